"""KFP components, one folder per pipeline stage; each body is one call into ``wsovvis.pipeline_steps``."""
