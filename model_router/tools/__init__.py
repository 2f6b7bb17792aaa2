"""Tools and output constraints around an agent model (the request's tools, tool_choice and
response_format are the contract's: model_router.contract.tools).

`constraint`: what a target is told to enforce (vLLM's `structured_outputs`); `prompt`: tools in a
conversation for a chat template that does not take them (Hermes' `<tool_call>` format); `parser`:
one parser from model output to OpenAI tool calls, for every target.
"""
