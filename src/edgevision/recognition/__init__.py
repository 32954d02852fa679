"""Face recognition: alignment onto the ArcFace template, margin losses, embeddings, verification
and a gallery. Heavy parts (dlib, faiss) load only when used."""
