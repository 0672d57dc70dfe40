"""`nimgen validate`: render the committed Applications as Argo CD does and check everything they apply."""
