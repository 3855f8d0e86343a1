# The image of a Docker or Kubernetes work pool: Prefect, this repository's runtime
# dependencies and its code in /opt/edfi-flows (deploy/docker.yaml's pull step runs the
# flows from there). Built by that file's build step; never built in this repository's
# tests (no Docker engine there), so it is kept to what it must do.
FROM prefecthq/prefect:3-python3.11

WORKDIR /opt/edfi-flows
# dependencies first: a code change does not reinstall them
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
