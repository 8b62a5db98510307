"""Resource definitions from the CIB: a real captured CIB and hand-written corner cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrader.health import PROBE_ATTR, health_spec
from upgrader.health.cib import CibError, parse_resources
from upgrader.pacemaker.state import ParseError

CAPTURED = Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml"


def test_captured_lab_cib_gives_groups_with_members_and_skips_the_clone() -> None:
    cib = parse_resources(CAPTURED.read_text())
    assert [r.id for r in cib.resources] == ["app1", "app2", "app3"]
    assert cib.skipped == ("probe-clone",)
    app1 = cib.resources[0]
    assert app1.meta == {PROBE_ATTR: "http://198.51.100.43/health"}
    assert [(m.id, m.agent) for m in app1.members] == [("app1-ip", "ocf:heartbeat:IPaddr2"), ("app1-ct", "ocf:heartbeat:lxc")]
    assert app1.members[1].params["container"] == "pcap-app1"
    spec = health_spec(app1)
    assert spec.primitives == ("app1-ip", "app1-ct")
    assert [c.name for c in spec.containers] == ["pcap-app1"]
    assert [p.text for p in spec.probes] == ["http://198.51.100.43/health"]


def test_resources_scope_templates_id_refs_and_agents_without_provider() -> None:
    text = """<resources>
      <template id="ct-tmpl" class="ocf" provider="heartbeat" type="lxc">
        <instance_attributes id="t-params"><nvpair id="t-c" name="container" value="from-template"/>
          <nvpair id="t-cfg" name="config" value="/etc/t"/></instance_attributes>
        <meta_attributes id="t-meta"><nvpair id="t-cmd" name="rolling-upgrade-check-cmd" value="/bin/true"/></meta_attributes>
      </template>
      <primitive id="web" template="ct-tmpl">
        <instance_attributes id="web-params"><nvpair id="web-c" name="container" value="web"/></instance_attributes>
        <meta_attributes id="web-meta"><nvpair id="web-p" name="rolling-upgrade-probe" value="tcp://198.51.100.9:80"/></meta_attributes>
      </primitive>
      <primitive id="svc" class="systemd" type="nginx">
        <meta_attributes id-ref="web-meta"/>
      </primitive>
      <bundle id="b1"/>
    </resources>"""
    cib = parse_resources(text)
    web, svc = cib.resources
    assert web.agent == "ocf:heartbeat:lxc"
    assert web.params == {"container": "web", "config": "/etc/t"}
    assert web.meta == {"rolling-upgrade-check-cmd": "/bin/true", PROBE_ATTR: "tcp://198.51.100.9:80"}
    assert svc.agent == "systemd:nginx" and svc.meta == {PROBE_ATTR: "tcp://198.51.100.9:80"}
    assert cib.skipped == ("b1",)


@pytest.mark.parametrize("text, message", [
    ("<resources", "not XML"),
    ("<constraints/>", "no <resources> section"),
])
def test_bad_cib_text_is_one_parse_error(text: str, message: str) -> None:
    with pytest.raises(CibError, match=message) as caught:
        parse_resources(text)
    assert isinstance(caught.value, ParseError)
