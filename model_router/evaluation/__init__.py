"""Does routing pay? Tasks with verifiable answers (tasks/), their checkers, the answers each model
gives (collected through the real server), the policies scored from those answers, and the outcome
model a learned policy is fitted from (model_router/routing/learned.py reads it)."""
