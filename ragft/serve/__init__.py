"""``ragft serve``: strategies behind an OpenAI-compatible HTTP API.

>>> from openai import OpenAI                                                   # doctest: +SKIP
>>> client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="k")          # doctest: +SKIP
>>> client.chat.completions.create(model="rag", messages=[{"role": "user", "content": "..."}])

Modules: ``app`` (routes), ``auth`` (API keys), ``request`` / ``response`` (the OpenAI
shapes), ``api_errors`` (error shape and statuses), ``workers`` (strategies off the event
loop, streaming), ``runtime`` (built strategies, index hot reload), ``metrics`` (Prometheus),
``server`` (uvicorn).
"""

from ragft.serve.app import create_app
from ragft.serve.server import BackgroundServer, run_server

__all__ = ["BackgroundServer", "create_app", "run_server"]
