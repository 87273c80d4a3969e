# RLHF Explorer for a class or a public Hugging Face Space: hosted mode on port 7860.
#   docker build -t rlhf-explorer . && docker run -p 7860:7860 rlhf-explorer
# docs/HOSTING.md has the settings, the Space header and what hosted mode guarantees.
FROM python:3.11-slim

# Spaces run the container as uid 1000; so does this image.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# The README's install command, on the requirements alone, so that code changes reuse this layer.
# torch first, from PyTorch's CPU wheel index: from PyPI, x86-64 gets the CUDA build and about 15
# nvidia wheels (some 3 GB to download, an image of 6-7 GB), which a CPU Space never uses. The
# CPU wheel (2.13.0+cpu) satisfies requirements.txt's torch==2.13.0, so the second pip keeps it.
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir -r requirements.txt

COPY --chown=user . .
USER user

# Visitors own their runs, inputs are limited to the embedded zoo, work is capped (docs/HOSTING.md).
# The runs folder is on the container's own disk: each run's SQLite store uses WAL mode, which is
# unverified on a Space's mounted storage bucket (docs/HOSTING.md says how to keep runs).
# The container's own address is 0.0.0.0 so the published port reaches it; the app itself still
# binds 127.0.0.1 everywhere else (.streamlit/config.toml).
ENV RLHF_EXPLORER_HOSTED=1 \
    RLHF_EXPLORER_RUNS=/home/user/runs \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PYTHONUNBUFFERED=1
EXPOSE 7860
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/_stcore/health', timeout=3)"
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "7860"]
