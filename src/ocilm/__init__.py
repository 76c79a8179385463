"""ocilm: OCI Generative AI with the OpenAI calling convention."""
__version__ = "0.1.0"
