"""scn-workflow: the nomination workflow of the ASEAN Smart Cities Network."""
