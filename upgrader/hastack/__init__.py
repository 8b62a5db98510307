"""The cluster stack around its own upgrade, on the node being upgraded (Pacemaker's rolling-upgrade rule).

:mod:`policy` keeps maintainer scripts from starting the stack (policy-rc.d),
:mod:`marker` records which run stopped it (the APT guard trusts only that
run), :mod:`control` stops and starts it with the configured commands.
"""
