"""The wsovvis pipeline definition (KFP v2), its compiled spec, and local/remote runners."""
