# RLHF Explorer for a class or a public Hugging Face Space: hosted mode on port 7860.
#   docker build -t rlhf-explorer . && docker run -p 7860:7860 rlhf-explorer
# docs/HOSTING.md has the settings, the Space header and what hosted mode guarantees.
FROM python:3.11-slim

# Spaces run the container as uid 1000; so does this image.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# The README's install command, on the requirements alone, so that code changes reuse this layer.
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=user . .
USER user

# Visitors own their runs, inputs are limited to the embedded zoo, work is capped (docs/HOSTING.md).
# The container's own address is 0.0.0.0 so the published port reaches it; the app itself still
# binds 127.0.0.1 everywhere else (.streamlit/config.toml).
ENV RLHF_EXPLORER_HOSTED=1 \
    RLHF_EXPLORER_RUNS=/home/user/runs \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PYTHONUNBUFFERED=1
EXPOSE 7860
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/_stcore/health', timeout=3)"
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "7860"]
