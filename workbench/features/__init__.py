"""The feature store at inference: a Feast repository owned by the workbench (definitions, materialisation,
the online store), read by replicas per inference batch."""
