//! Real-HTTP stand-ins for the outside world, used by tests and benchmarks:
//! an LLM server (Ollama and OpenAI wire formats) and an OAuth/OIDC provider.

pub mod mock_llm;
pub mod mock_oauth;
