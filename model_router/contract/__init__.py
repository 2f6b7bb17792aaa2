"""The contract between the processes (the OpenAI front and clients, the router, the models): per
interface, one module owns how a request is encoded and decoded and how a response is, and errors
travel as a machine-readable kind. No Triton imports: each side wraps the numpy arrays in its own
tensor class.

- `router`: the router's inputs and answers        - `generation`: text generation (vLLM's contract)
- `media`: tts, stt, OCR, video frames             - `classifier`: the query classifier
- `errors`: WireError, the error kinds             - `tensors`: arrays by name, read and built
"""
