"""Stop and start this node's cluster stack around an upgrade (``rolling-upgrade stack stop|start``).

Stop: the marker first (the guard then trusts this run), then policy-rc.d,
then ``Stack::Stop``; it is stopped when neither pacemakerd nor corosync
runs any more. Start: policy-rc.d goes, ``Stack::Start`` runs, the marker
goes. Both say in one line what they did or why they could not.
"""

from __future__ import annotations

from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from upgrader.config import Config
from upgrader.hastack import marker, policy
from upgrader.runner import Runner

DAEMONS = ("pacemakerd", "corosync")
POLL = 0.2
NOTHING_TO_START = "the cluster stack was not stopped by rolling-upgrade; nothing to do"


class StackError(Exception):
    """The stack could not be stopped or started; the message says what was seen."""


def running_daemons(proc: Path = Path("/proc")) -> list[str]:
    """The cluster daemons running on this node (by process name)."""
    found = set()
    for comm in proc.glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue
        if name in DAEMONS:
            found.add(name)
    return sorted(found)


def stop(config: Config, stopped: marker.Stopped, timeout: float) -> str:
    marker.write(stopped)
    policy.install(stopped.run_id)
    result = Runner(timeout=timeout).call(list(config.stack_stop))
    if result.returncode != 0:
        why = result.last_words
        raise StackError(f"Stack::Stop ({' '.join(config.stack_stop)}) failed: {why}")
    try:
        Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(POLL), retry=retry_if_result(bool))(running_daemons)
    except RetryError:
        raise StackError(f"Stack::Stop returned but {', '.join(running_daemons())} still run(s) after "
                         f"{timeout:g}s") from None
    return f"cluster stack stopped (run {stopped.run_id}); policy-rc.d forbids starting it"


def start(config: Config, run_id: str | None, timeout: float) -> str:
    """Start the stack if ``run_id`` (any run when None) stopped it; say so when nobody did."""
    held = marker.read()
    if held is None and not policy.ours():
        return NOTHING_TO_START
    if held is not None and run_id is not None and held.run_id != run_id:
        raise StackError(f"the cluster stack was stopped by run {held.run_id}, not {run_id}; "
                         "start it with 'rolling-upgrade stack start' without --run-id")
    policy.remove()
    result = Runner(timeout=timeout).call(list(config.stack_start))
    if result.returncode != 0:
        why = result.last_words
        raise StackError(f"Stack::Start ({' '.join(config.stack_start)}) failed: {why}")
    marker.clear()
    return "cluster stack started"


def stopped_by(run_id: str) -> bool:
    """Whether this node's stack is stopped by ``run_id`` (the guard's question)."""
    held = marker.read()
    return held is not None and held.run_id == run_id and not running_daemons()
