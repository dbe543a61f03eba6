"""Practice knowledge: parsing, chunking, embeddings, the vector index, search."""
