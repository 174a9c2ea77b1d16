# The ReXGrounding algorithm container (Grand Challenge conventions; see inference.py for the I/O contract).
# Build: scripts/container/build.sh [--cpu]   Test: scripts/container/test-run.sh   Save: scripts/container/save.sh
ARG BASE_IMAGE=docker.io/library/python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE}

# Replaces the onnxruntime and nvidia-* lines of requirements.txt when set (e.g. "onnxruntime==1.26.0" for
# a CPU build, or another onnxruntime-gpu release with the CUDA wheels its extras bring).
ARG ONNXRUNTIME=""

RUN groupadd -r user && useradd -m --no-log-init -r -g user user

WORKDIR /opt/app
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH="/home/user/.local/bin:${PATH}"

COPY requirements.txt /opt/app/
USER user
RUN if [ -n "$ONNXRUNTIME" ]; then \
        grep -v -E '^(onnxruntime|nvidia-)' requirements.txt > /tmp/requirements.txt && echo "$ONNXRUNTIME" >> /tmp/requirements.txt; \
    else cp requirements.txt /tmp/requirements.txt; fi \
 && python -m pip install --user --no-cache-dir --no-warn-script-location -r /tmp/requirements.txt \
 && rm -rf /tmp/requirements.txt /home/user/.cache \
 && python -c "import onnxruntime, SimpleITK, numpy, scipy, pydantic; print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"

# Code last, so a code change rebuilds only these layers; owned by root, read-only for the user.
COPY resources /opt/app/resources
COPY rexground /opt/app/rexground
COPY inference.py /opt/app/
USER root
# Byte-compile now (the code is read-only at run time) and leave /tmp empty, as the platform expects.
RUN python -m compileall -q /opt/app && find /tmp -mindepth 1 -delete
USER user
RUN python -c "import inference, rexground.engines.select, rexground.predictor"

ENTRYPOINT ["python", "inference.py"]
