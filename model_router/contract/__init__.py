"""The contract between the processes (the OpenAI front and clients, the router, the models): the
schema of every interface, typed and validated once where it enters a process, and how each request
and response is encoded and decoded. It sits at the bottom of `model_router`: it imports nothing of
ours but the vocabulary and the errors. No Triton imports: each side wraps the numpy arrays in its
own tensor class.

- `router`: the router's request and its answer    - `generation`: text generation (vLLM's contract)
- `request`: the router's options and conversation - `sampling`: sampling parameters, output constraints
- `tools`: tools, tool_choice, response_format, calls - `limits`: what one text model takes
- `control`: last response, heartbeats, cancels    - `media`: tts, stt, OCR, video frames
- `classifier`: the query classifier               - `metrics`: the router's metric events
- `errors`: WireError, the error kinds             - `tensors`: arrays by name, read and built
- `jsonfield`: a JSON object in a request field   - `embedding`: the embedding model's texts and vectors
"""
