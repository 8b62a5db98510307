"""The rolling upgrade's procedure (:mod:`.procedure`) and a module per step (see README, "How the code is laid out")."""
