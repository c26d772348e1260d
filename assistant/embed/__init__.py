"""The embedding model: the packaged all-MiniLM-L6-v2, with LangChain's ``Embeddings`` interface
(onnxruntime by default; an int8 variant for the index; sentence-transformers as the fallback)."""
