"""The nightly patch window: ``rolling-upgrade window``, its cron entry, its reports.

:mod:`.fit` decides what fits into the time left (pure), :mod:`.report`
words and sends the summary (mail in unattended-upgrades' style, webhook),
:mod:`.boot` tells how long ago the node booted or joined the cluster, and
:mod:`.command` is the cron entry point.
"""
