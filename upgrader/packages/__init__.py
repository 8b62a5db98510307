"""The node's packages through python-apt: plan the pending dist-upgrade, run it, and what it leaves behind."""
