"""The search index: passages and sentences with their vectors, in an embedded Chroma folder
(built by one writer, in generations) or on a Chroma server."""
