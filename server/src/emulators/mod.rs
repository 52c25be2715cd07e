//! Stand-ins for the outside world over real sockets, used by tests and benchmarks:
//! an LLM server (Ollama and OpenAI wire formats), an OAuth/OIDC provider, and a
//! delaying TCP proxy that adds network latency to any connection.

pub mod mock_llm;
pub mod mock_net;
pub mod mock_oauth;
