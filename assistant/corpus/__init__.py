"""The corpus: the manifest, each document's sections, passages and sentences, with exact offsets."""
