"""language_node: the `ask` service answers questions about the scene and the car's intent
from the newest Understanding-Expert context (only the question and answer are decoded).

Requests are served one at a time; question length and decode time are bounded, so a
caller waits at most max_decode_time_s per question ahead of it. The other nodes run in
their own processes and never wait for an answer.
"""

from __future__ import annotations

from automot_msgs.srv import Ask
from rclpy.node import Node

from automot_ros.nodes.common import load_model, run, subscribe_contexts
from automot_ros.nodes.params import LanguageParams, declare
from automot_ros.runtime.context_source import ContextSource
from automot_ros.runtime.language import LanguageRunner


class LanguageNode(Node):
    def __init__(self):
        super().__init__("language_node")
        self.params = p = declare(self, LanguageParams)
        model = load_model(p)
        self.contexts = ContextSource(model.model_id)
        self.runner = LanguageRunner(model, self.contexts, p.max_question_chars, p.max_new_tokens,
                                     p.max_decode_time_s)
        subscribe_contexts(self, self.contexts, error_log_period_s=5.0)
        self.create_service(Ask, "ask", self.on_ask)
        self.get_logger().info(f"model {model.model_id}: answering on {self.resolve_service_name('ask')}")

    def on_ask(self, request: Ask.Request, response: Ask.Response) -> Ask.Response:
        result = self.runner.ask(request.question)
        response.success, response.answer, response.error = result.success, result.answer, result.error
        response.context_seq, response.latency_ms = result.context_seq, float(result.latency_ms)
        return response

    def destroy_node(self):
        self.contexts.close()
        return super().destroy_node()


def main(args=None):
    raise SystemExit(run(LanguageNode, args))


if __name__ == "__main__":
    main()
