"""The embedding model: the packaged all-MiniLM-L6-v2, behind LangChain's ``Embeddings``
(onnxruntime by default; an int8 variant for the index; sentence-transformers as the fallback)."""
