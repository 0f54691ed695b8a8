"""A thinking retriever in LlamaIndex over Qdrant's embedded local mode.

    pip install 'o1embedder[llamaindex]' llama-index-vector-stores-qdrant
    o1emb demo --out o1emb-demo                  # or any O1 model and BEIR folder
    python examples/rag_llamaindex.py --model o1emb-demo/model --data o1emb-demo/world

``O1LlamaIndexEmbedding`` is LlamaIndex's ``BaseEmbedding``: nodes are embedded without thinking,
queries thinking; ``last_thoughts`` holds the last query's thoughts. The node's ``doc_id`` is kept out
of the embedded text, so a node embeds exactly as ``o1emb index`` embeds the document.
"""

from __future__ import annotations

from rag_common import arguments, corpus, queries, show, store_folder, write


def main() -> None:
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from o1embedder.integrations.llamaindex import O1LlamaIndexEmbedding

    args = arguments(__doc__.splitlines()[0])
    ids, texts = corpus(args.data)
    embed = O1LlamaIndexEmbedding(args.model)
    client = QdrantClient(path=store_folder(args.store))
    if client.collection_exists("beir"):
        client.delete_collection("beir")
    store = QdrantVectorStore(collection_name="beir", client=client)
    nodes = [TextNode(text=t, metadata={"doc_id": i}, excluded_embed_metadata_keys=["doc_id"],
                      excluded_llm_metadata_keys=["doc_id"]) for i, t in zip(ids, texts, strict=True)]
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=args.k)
    found: dict[str, list[str]] = {}
    for qid, text in queries(args.data, args.split, args.queries):
        hits = retriever.retrieve(text)
        show(qid, text, embed.last_thoughts, [(h.node.metadata["doc_id"], h.score) for h in hits], found)
    write(found, args.json)
    client.close()


if __name__ == "__main__":
    main()
