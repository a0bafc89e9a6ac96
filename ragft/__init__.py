"""ragft: question answering over your own documents with RAG, fine-tuned models or both,
and the measurements (quality, latency, cost) to choose between them."""
