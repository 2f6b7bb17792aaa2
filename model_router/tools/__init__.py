"""Tools and output constraints: what a request may ask of an agent model, checked once here.

`spec`: the tools, tool_choice and response_format of a request, validated (errors name the field);
`constraint`: what a target is told to enforce (vLLM's `structured_outputs`); `prompt`: tools in a
conversation for a chat template that does not take them (Hermes' `<tool_call>` format); `parser`:
one parser from model output to OpenAI tool calls, for every target.
"""
