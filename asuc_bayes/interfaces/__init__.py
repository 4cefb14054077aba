"""What users touch: the command line, the web app, reports, figures and output
formats (layer 6: calls the public API of the layers below)."""
