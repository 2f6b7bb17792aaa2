"""An OpenAI-compatible HTTP API in front of the router: it translates, the router routes.

`python -m openai_front --triton-grpc HOST:PORT` serves /v1/models, /v1/chat/completions, /v1/responses,
/v1/messages (Anthropic's), /v1/embeddings, /v1/audio/speech and /v1/audio/transcriptions;
scripts/serve.py starts it beside Triton.
"""

# The API key, when one is required (environment, so that it is not on a command line `ps` shows).
API_KEY_ENV = "TMR_OPENAI_API_KEY"
# Where the Responses API keeps stored responses: memory[:N] or a redis:// URL (every replica reads it).
RESPONSES_STORE_ENV = "TMR_RESPONSES_STORE"
# Tenants: where keys, limits and usage live (a SQLite file or a redis:// URL), and the admin API's key.
KEYS_ENV, ADMIN_KEY_ENV = "TMR_KEYS", "TMR_ADMIN_KEY"
