"""automot_ros.ask_client: empty questions are re-sent until one is answered, so a reply lost
before the server matched the client's reply reader (ros2/rmw_fastrtps#467) does not lose the
real question's answer. The DDS path itself: test_interfaces.py and test/stack."""

import time

from automot_msgs.srv import Ask
from automot_ros.ask_client import ask, wait_for_reply_path
from rclpy.task import Future


class LossyClient:
    """An Ask client whose first ``lost`` replies never arrive; later requests are answered
    at once, as the language node answers an empty question."""

    def __init__(self, lost: int):
        self.lost, self.questions = lost, []

    def call_async(self, request: Ask.Request) -> Future:
        self.questions.append(request.question)
        future = Future()
        if len(self.questions) > self.lost:
            future.set_result(Ask.Response(success=bool(request.question), answer=request.question.upper(),
                                           error="" if request.question else "the question is empty"))
        return future


def poll_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return bool(predicate())


def test_lost_replies_are_probed_again_with_empty_questions_before_the_question_is_asked():
    client = LossyClient(lost=2)
    assert wait_for_reply_path(client, poll_until, timeout_s=5.0, probe_period_s=0.05)
    assert client.questions == ["", "", ""]

    response = ask(client, "what is ahead?", poll_until, timeout_s=1.0)
    assert response.success and response.answer == "WHAT IS AHEAD?"
    assert client.questions == ["", "", "", "what is ahead?"]


def test_a_server_that_never_replies_gives_up_at_the_timeout():
    client = LossyClient(lost=10**6)
    start = time.monotonic()
    assert not wait_for_reply_path(client, poll_until, timeout_s=0.5, probe_period_s=0.1)
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 1.5
    assert 2 <= len(client.questions) <= 6 and set(client.questions) == {""}  # re-sent each period
    assert ask(client, "anyone?", poll_until, timeout_s=0.1) is None
