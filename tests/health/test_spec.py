"""Probe URL parsing and preflight validation of the CIB meta attributes."""

from __future__ import annotations

import pytest

from upgrader.health import (CHECK_CMD_ATTR, PROBE_ATTR, ProbeSpecError, ResourceConfig, health_spec,
                             parse_probe, validate)

LXC = "ocf:heartbeat:lxc"


def lxc(rid: str, container: str | None = None, **meta: str) -> ResourceConfig:
    return ResourceConfig(rid, LXC, {"container": container or rid}, meta)


def test_http_defaults() -> None:
    p = parse_probe("http://198.51.100.11/health")
    assert (p.scheme, p.host, p.port, p.path, p.status, p.body, p.verify) == (
        "http", "198.51.100.11", 80, "/health", 200, None, True)


def test_https_with_options_and_query() -> None:
    p = parse_probe("https://198.51.100.11:8443/s?x=1#status=204&body=ok%20now%26%23+&verify=no")
    assert (p.port, p.path, p.status, p.verify) == (8443, "/s?x=1", 204, False)
    assert p.body is not None and p.body.pattern == "ok now&#+"  # '+' stays a regex '+'
    assert parse_probe("https://h").port == 443 and parse_probe("https://h").path == "/"


def test_tcp() -> None:
    p = parse_probe("tcp://198.51.100.11:5432")
    assert (p.scheme, p.host, p.port) == ("tcp", "198.51.100.11", 5432)


@pytest.mark.parametrize("text, why", [
    ("htp://x", "'htp://x' is not tcp://, http:// or https://"),
    ("198.51.100.11:80", "is not tcp://, http:// or https://"),
    ("http:/x", "is not tcp://, http:// or https://"),
    ("tcp://h", "needs a port (tcp://host:port)"),
    ("tcp://h:80/x", "tcp:// takes only host:port"),
    ("http://h:99999/", "has an invalid port"),
    ("http://h:0/", "has an invalid port"),
    ("http:///x", "has no host"),
    ("http://u:p@h/", "credentials in the URL are not supported"),
    ("http://h/#stat=200", "unknown option 'stat=200' after '#' (known: body, status, verify)"),
    ("http://h/#status", "unknown option 'status'"),
    ("http://h/#status=abc", "status='abc' is not an HTTP status (100-599)"),
    ("http://h/#status=99", "is not an HTTP status"),
    ("http://h/#status=200&status=204", "option status given twice"),
    ("http://h/#body=(", "body='(' is not a valid regular expression"),
    ("http://h/#verify=no", "verify= applies to https:// only"),
    ("https://h/#verify=off", "verify='off' must be yes or no"),
])
def test_bad_probe(text: str, why: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_probe(text)
    assert why in str(err.value)


def test_error_names_resource_and_attribute_on_one_line() -> None:
    with pytest.raises(ProbeSpecError) as err:
        validate([lxc("app1", **{PROBE_ATTR: "tcp://h:1"}), lxc("app2", **{PROBE_ATTR: "http://ok/ htp://x"})])
    assert str(err.value) == "app2: meta attribute rolling-upgrade-probe: 'htp://x' is not tcp://, http:// or https://"
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value, why", [
    ("", "meta attribute rolling-upgrade-check-cmd: empty command"),
    ("/bin/sh -c 'x", "meta attribute rolling-upgrade-check-cmd: \"/bin/sh -c 'x\": no closing quotation"),
])
def test_bad_check_cmd(value: str, why: str) -> None:
    with pytest.raises(ProbeSpecError, match="^web1: ") as err:
        health_spec(lxc("web1", **{CHECK_CMD_ATTR: value}))
    assert why in str(err.value)


def test_empty_probe_attribute() -> None:
    with pytest.raises(ProbeSpecError, match="^web1: meta attribute rolling-upgrade-probe: empty value$"):
        health_spec(lxc("web1", **{PROBE_ATTR: "  "}))


def test_lxc_without_container_parameter() -> None:
    with pytest.raises(ProbeSpecError, match="^g/web1: parameter container is missing"):
        health_spec(ResourceConfig("g", members=(ResourceConfig("web1", LXC),)))


def test_primitive_lxc_with_probes_and_command() -> None:
    spec = health_spec(lxc("web1", "c1", **{PROBE_ATTR: "tcp://h:1\nhttp://h/ tcp://h:1",
                                             CHECK_CMD_ATTR: "/usr/bin/test -s '/srv/web/index.html'"}))
    assert spec.primitives == ("web1",)
    assert [p.text for p in spec.probes] == ["tcp://h:1", "http://h/"]  # duplicates dropped
    assert [(c.primitive, c.name, c.command) for c in spec.containers] == [
        ("web1", "c1", ("/usr/bin/test", "-s", "/srv/web/index.html"))]
    assert spec.container_note is None


def test_group_attributes_on_group_and_members() -> None:
    group = ResourceConfig("app", meta={PROBE_ATTR: "http://h/a", CHECK_CMD_ATTR: "/bin/true"}, members=(
        ResourceConfig("vip", "ocf:heartbeat:IPaddr2"),
        lxc("web1", **{PROBE_ATTR: "tcp://h:2"}),
        lxc("web2", **{CHECK_CMD_ATTR: "/bin/own"}),
    ))
    spec = health_spec(group)
    assert spec.primitives == ("vip", "web1", "web2")
    assert [p.text for p in spec.probes] == ["http://h/a", "tcp://h:2"]
    assert [(c.name, c.command) for c in spec.containers] == [("web1", ("/bin/true",)), ("web2", ("/bin/own",))]
    assert spec.container_note is None  # IPaddr2 beside an lxc container is no container


def test_other_container_agents_are_named() -> None:
    spec = health_spec(ResourceConfig("d", "ocf::heartbeat:docker", meta={CHECK_CMD_ATTR: "/bin/true"}))
    assert spec.containers == ()
    assert spec.container_note == "container level not checked: agent ocf:heartbeat:docker; rolling-upgrade-check-cmd not run"
    mixed = health_spec(ResourceConfig("m", members=(lxc("web1"), ResourceConfig("vm", "ocf:heartbeat:VirtualDomain"))))
    assert [c.name for c in mixed.containers] == ["web1"]
    assert mixed.container_note == "container level not checked: agent ocf:heartbeat:VirtualDomain"


def test_group_without_container() -> None:
    spec = health_spec(ResourceConfig("g", members=(ResourceConfig("pd", "ocf:pacemaker:Dummy"),
                                                    ResourceConfig("web", "ocf:heartbeat:anything"))))
    assert spec.container_note == "container level not checked: agents ocf:pacemaker:Dummy, ocf:heartbeat:anything"
    assert spec.probes == ()


def test_validate_returns_specs_by_id() -> None:
    specs = validate([lxc("a"), lxc("b", **{PROBE_ATTR: "tcp://h:1"})])
    assert list(specs) == ["a", "b"] and specs["b"].probes[0].port == 1


def test_a_check_command_runs_only_a_program_the_nodes_own_configuration_allows() -> None:
    from upgrader.health.cib import CibResources
    from upgrader.health.live import declarations

    cib = CibResources((lxc("web1", **{CHECK_CMD_ATTR: "/usr/bin/echo ok"}), lxc("web2")))
    refused = declarations(cib, allowed=())
    assert list(refused.specs) == ["web2"]
    assert refused.problems == {"web1": "web1: container web1: meta attribute rolling-upgrade-check-cmd runs '/usr/bin/echo', "
                                        "which Rolling-Upgrade::Health::Commands does not allow (list it there, on "
                                        "every node, to allow it)"}
    allowed = declarations(cib, allowed=("/usr/bin/echo",))
    assert list(allowed.specs) == ["web1", "web2"] and allowed.problems == {}
