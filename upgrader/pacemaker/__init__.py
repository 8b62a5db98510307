"""The Pacemaker adapter (pcs style) and the cluster-wide upgrade lock.

``state`` parses crm_mon's XML into frozen dataclasses, ``simulate`` parses
crm_simulate's transition summary, ``live`` runs operations through the
runner, ``lock`` keeps the upgrade lock in the CIB, ``names`` validates
everything that goes into XML, XPath or argv, ``compat`` holds Pacemaker's
rolling-upgrade rules (versions, feature sets, crm_verify's output),
``stack_check`` applies them before a cluster-stack upgrade, and ``commands``
implements ``rolling-upgrade status`` and ``unlock``.
"""
