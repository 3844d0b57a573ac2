FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY callscreen callscreen
COPY agi agi
COPY dashboard dashboard
COPY blocklists blocklists
RUN pip install --no-cache-dir . && useradd --system --home /app callscreen
USER callscreen
EXPOSE 4573 8080 9464
CMD ["callscreen", "serve"]
