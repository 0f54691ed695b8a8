"""A thinking retriever in a Haystack pipeline over Qdrant's embedded local mode.

    pip install 'o1embedder[haystack]' qdrant-haystack
    o1emb demo --out o1emb-demo                  # or any O1 model and BEIR folder
    python examples/rag_haystack.py --model o1emb-demo/model --data o1emb-demo/world

``O1DocumentEmbedder`` embeds the documents without thinking before they are written to the store;
in the query pipeline ``O1TextEmbedder`` thinks and passes its thoughts on in its ``meta`` output.
"""

from __future__ import annotations

from rag_common import arguments, corpus, queries, show, store_folder, write


def main() -> None:
    from haystack import Document, Pipeline
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    from o1embedder.integrations.haystack import O1DocumentEmbedder, O1TextEmbedder

    args = arguments(__doc__.splitlines()[0])
    ids, texts = corpus(args.data)
    docs = O1DocumentEmbedder(args.model).run([Document(content=t, meta={"doc_id": i})
                                               for i, t in zip(ids, texts, strict=True)])["documents"]
    store = QdrantDocumentStore(path=store_folder(args.store), index="beir", embedding_dim=len(docs[0].embedding),
                                similarity="dot_product", recreate_index=True, progress_bar=False)
    store.write_documents(docs)
    pipe = Pipeline()
    pipe.add_component("embedder", O1TextEmbedder(args.model))
    pipe.add_component("retriever", QdrantEmbeddingRetriever(document_store=store, top_k=args.k))
    pipe.connect("embedder.embedding", "retriever.query_embedding")
    found: dict[str, list[str]] = {}
    for qid, text in queries(args.data, args.split, args.queries):
        out = pipe.run({"embedder": {"text": text}}, include_outputs_from={"embedder"})
        hits = [(d.meta["doc_id"], d.score) for d in out["retriever"]["documents"]]
        show(qid, text, out["embedder"]["meta"]["thoughts"], hits, found)
    write(found, args.json)


if __name__ == "__main__":
    main()
