"""KFP components, one folder per pipeline stage; each body is one keyword call into its stage's step in ``wsovvis``."""
