"""A thinking retriever in LangChain over Qdrant's embedded local mode.

    pip install 'o1embedder[langchain]' langchain-qdrant
    o1emb demo --out o1emb-demo                  # or any O1 model and BEIR folder
    python examples/rag_langchain.py --model o1emb-demo/model --data o1emb-demo/world

``O1Embeddings`` is LangChain's ``Embeddings``: ``embed_documents`` (used when the store is filled)
embeds without thinking, ``embed_query`` (used by every search) thinks; its ``last_thoughts`` holds the
thoughts of the last query, as LangChain's interface has no place for them.
"""

from __future__ import annotations

from rag_common import arguments, corpus, queries, show, store_folder, write


def main() -> None:
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client.models import Distance

    from o1embedder.integrations.langchain import O1Embeddings

    args = arguments(__doc__.splitlines()[0])
    ids, texts = corpus(args.data)
    embeddings = O1Embeddings(args.model)                     # queries think with the model's settings
    store = QdrantVectorStore.from_texts(texts, embeddings, metadatas=[{"doc_id": i} for i in ids],
                                         path=store_folder(args.store), collection_name="beir",
                                         distance=Distance.DOT, force_recreate=True)
    found: dict[str, list[str]] = {}
    for qid, text in queries(args.data, args.split, args.queries):
        hits = store.similarity_search_with_score(text, k=args.k)
        show(qid, text, embeddings.last_thoughts, [(d.metadata["doc_id"], s) for d, s in hits], found)
    write(found, args.json)


if __name__ == "__main__":
    main()
