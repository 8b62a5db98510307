"""The APT/dpkg guard: hooks that let dpkg touch a node only when it is drained and holds the upgrade lock.

Modules used by the hooks' repeated call (:mod:`runkey`, :mod:`store`,
:mod:`hook`) import only a few standard-library modules, so that call stays
cheaper than one ``crm_mon``; everything else is imported lazily.
"""
