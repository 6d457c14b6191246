"""Building the production artefacts: the image (deploy/image), the Helm chart (deploy/helm) and the
air-gapped bundle (deploy/bundle.py). Nothing here runs the platform or imports its apps."""
