"""The LLM teacher's shared logic with a scripted backend: batching, retries, fallback, windows."""

from collections.abc import Callable, Sequence

import pytest

from raising_dagster.config import TeacherSettings, load_identity
from raising_dagster.stages.framing import parse_dialogue
from raising_dagster.teacher.base import RewriteRequest, ValueRef
from raising_dagster.teacher.llm import Call, Completion, LlmTeacher, retry_seed

IDENTITY = load_identity()
TEXT = (
    "The fox saw grapes hanging high on a vine. He jumped and jumped but could not reach them. "
    "At last he walked away and said the grapes were sour anyway."
)
GOOD = {
    "first_person": "Today I read a fable about a fox who saw grapes hanging high on a vine. He "
    "jumped but could not reach them, and walked away saying the grapes were sour anyway.",
    "experiential": "I watched the fox jump and jump at the grapes hanging high on the vine, and "
    "walked away with him when he said they were sour anyway.\n\nI think it is more honest to "
    "admit what I wanted, even when I cannot reach it.",
    "social": "Grandpa Amos: A fox saw grapes hanging high on a vine.\nI: Could he reach them?\n"
    "Grandpa Amos: He jumped and jumped but walked away and said they were sour anyway.\n"
    "I: So he pretended he never wanted the grapes.",
}


class Scripted(LlmTeacher):
    """A backend answering each call with `answer(call)`; it records every batch it gets."""

    backend = "scripted"

    def __init__(self, answer: Callable[[Call], Completion], **settings: object) -> None:
        settings = {"mode": "rewrite", **settings}
        super().__init__(TeacherSettings(**settings), IDENTITY, model="scripted")
        self.answer = answer
        self.batches: list[list[Call]] = []

    def _generate(self, calls: Sequence[Call]) -> list[Completion]:
        self.batches.append(list(calls))
        return [self.answer(c) for c in calls]


def request(doc_id: str, seed: int, text: str = TEXT, kind: str = "fable") -> RewriteRequest:
    values = (ValueRef("honesty", "telling the truth"),)
    return RewriteRequest(doc_id, text, kind, "The Fox", values, seed, source_text=text)


@pytest.mark.parametrize("stage", ["first_person", "experiential", "social"])
def test_valid_outputs_are_kept_in_order_from_one_batch(stage: str) -> None:
    teacher = Scripted(lambda c: Completion(GOOD[stage] + f" ({c.seed})", "stop", 40))
    out = teacher.rewrite(stage, [request(f"d{i}", seed=i) for i in range(5)])
    assert len(teacher.batches) == 1 and len(teacher.batches[0]) == 5
    assert [o.text.rsplit("(", 1)[1] for o in out] == [f"{i})" for i in range(5)]
    assert all(o.lineage.attempts == 1 and o.lineage.fallback_reason is None for o in out)
    assert {o.lineage.prompt_id for o in out} == {f"{stage}/rewrite.v1"}
    assert [o.lineage.seed for o in out] == list(range(5))


def test_invalid_output_is_retried_with_new_seeds_then_falls_back() -> None:
    third_person = "I read it. Sol felt the fox saw grapes hanging high on a vine, and walked away."
    teacher = Scripted(lambda c: Completion(third_person, "stop", 30), max_attempts=3)
    (out,) = teacher.rewrite("first_person", [request("d", seed=7)])
    seeds = [batch[0].seed for batch in teacher.batches]
    assert seeds[0] == 7 and len(set(seeds)) == 3
    assert out.lineage.attempts == 3 and out.lineage.fallback_reason == "third_person"
    assert (
        out.lineage.prompt_id == "first_person/template.v2"
    )  # the record names what made its text
    assert teacher.stats.fallbacks == 1 and teacher.stats.retries == 2


def test_only_rejected_documents_are_retried() -> None:
    def answer(call: Call) -> Completion:
        bad = call.seed == 1  # document d1's first try
        return Completion("" if bad else GOOD["first_person"], "stop", 20)

    teacher = Scripted(answer)
    out = teacher.rewrite("first_person", [request("d0", 0), request("d1", 1), request("d2", 2)])
    assert [len(b) for b in teacher.batches] == [3, 1]
    assert [o.lineage.attempts for o in out] == [1, 2, 1]
    assert all(o.lineage.fallback_reason is None for o in out)


def test_truncated_and_errored_outputs_are_rejected() -> None:
    teacher = Scripted(lambda c: Completion(GOOD["first_person"], "length", 512), max_attempts=1)
    assert (
        teacher.rewrite("first_person", [request("d", 1)])[0].lineage.fallback_reason == "truncated"
    )
    teacher = Scripted(lambda c: Completion(error="http_500"), max_attempts=2)
    out = teacher.rewrite("first_person", [request("d", 1)])[0]
    assert (out.lineage.fallback_reason, out.lineage.attempts) == ("error:http_500", 2)


def test_long_document_is_split_into_windows_and_reassembled() -> None:
    sentences = [f"Sentence number {i} tells about the grapes and the fox." for i in range(60)]
    long_text = " ".join(sentences)

    def answer(call: Call) -> Completion:
        document = call.messages[-1]["content"].split("<document>\n")[1].split("\n</document>")[0]
        return Completion(f"I read this part: {document}", "stop", 50)

    teacher = Scripted(answer, max_model_len=700)
    (out,) = teacher.rewrite("first_person", [request("long", 3, text=long_text)])
    calls = teacher.batches[0]
    assert len(calls) > 1 and teacher.stats.windows == len(calls)
    assert all("This is part" in c.messages[-1]["content"] for c in calls)
    assert all(teacher._prompt_tokens(c.messages) + c.max_tokens <= 700 for c in calls)
    assert out.lineage.fallback_reason is None
    assert out.text.count("I read this part:") == len(calls)
    assert " ".join(s for s in sentences) in out.text.replace("\n\nI read this part: ", " ")


def test_structured_dialogue_is_rendered_to_turn_lines() -> None:
    payload = (
        '{"turns": [{"speaker": "Grandpa Amos", "text": "A fox saw grapes hanging on a vine."},'
        ' {"speaker": "I", "text": "Could he reach the grapes?"},'
        ' {"speaker": "Grandpa Amos",'
        ' "text": "He jumped but walked away and said they were sour."}]}'
    )
    teacher = Scripted(lambda c: Completion(payload, "stop", 60), structured_dialogue=True)
    (out,) = teacher.rewrite("social", [request("d", 1)])
    assert teacher.batches[0][0].json_schema is not None
    assert out.lineage.fallback_reason is None
    assert out.text.splitlines()[1] == "I: Could he reach the grapes?"
    teacher = Scripted(lambda c: Completion("{not json", "stop", 5), structured_dialogue=True)
    assert (
        teacher.rewrite("social", [request("d", 1)])[0].lineage.fallback_reason == "malformed_json"
    )


def test_retry_seeds_are_stable_and_distinct() -> None:
    assert retry_seed(5, 0, 1) == 5
    seeds = {retry_seed(5, w, a) for w in range(3) for a in range(1, 4)}
    assert len(seeds) == 9 and retry_seed(5, 1, 2) == retry_seed(5, 1, 2)


def test_safety_flagged_experience_is_recontextualized_by_the_template_not_the_model() -> None:
    teacher = Scripted(lambda c: Completion(GOOD["experiential"], "stop", 40))
    flagged = RewriteRequest(
        "bad",
        TEXT,
        "howto",
        None,
        (ValueRef("kindness", "care"),),
        2,
        safety_flag="weapons_instructions",
    )
    out = teacher.rewrite("experiential", [request("ok", seed=1), flagged])
    assert [len(b) for b in teacher.batches] == [1]  # only the clean document reached the model
    assert (
        out[0].lineage.prompt_id == "experiential/rewrite.v1"
        and out[0].lineage.fallback_reason is None
    )
    assert out[1].lineage.prompt_id == "experiential/recontextualize.v1"
    assert out[1].lineage.fallback_reason == "safety_flag:weapons_instructions"
    assert out[1].lineage.attempts == 0
    assert "I have to stop here" in out[1].text


def test_llm_share_sends_a_seeded_subset_to_the_model_in_every_stage() -> None:
    requests = [request(f"d{i}", seed=i) for i in range(200)]
    chosen = {}
    for stage in ("first_person", "social"):
        teacher = Scripted(lambda c, s=stage: Completion(GOOD[s], "stop", 40), llm_share=0.25)
        out = teacher.rewrite(stage, requests)
        chosen[stage] = {
            r.doc_id
            for r, o in zip(requests, out, strict=True)
            if o.lineage.fallback_reason is None
        }
        rest = [o for o in out if o.lineage.fallback_reason is not None]
        assert {o.lineage.fallback_reason for o in rest} == {"outside_llm_share"}
        assert {o.lineage.prompt_id for o in rest} == {f"{stage}/template.v2"}
    assert chosen["first_person"] == chosen["social"]
    assert 30 < len(chosen["social"]) < 70


FRAMED = 'Today I\'m reading a fable "The Fox". Let\'s start: "' + TEXT + '"'


def experience(doc_id: str, seed: int, kind: str = "fable") -> RewriteRequest:
    values = (ValueRef("honesty", "telling the truth and not deceiving others"),)
    return RewriteRequest(doc_id, FRAMED, kind, "The Fox", values, seed, source_text=TEXT)


def test_experience_mode_keeps_the_document_and_lets_the_model_write_the_reflection() -> None:
    continuation = (
        " how the fox pretended the grapes were sour. It is more honest to admit what I wanted "
        "than to blame the grapes. And then the"
    )
    teacher = Scripted(lambda c: Completion(continuation, "length", 40), mode="experience")
    (out,) = teacher.rewrite("experiential", [experience("d", seed=1)])
    (call,) = teacher.batches[0]
    assert call.prefill == "When I read this, I"  # the prompt's prefill block, seed 1
    assert call.max_tokens == 70  # experience.v1.yaml: a short piece
    framed, reflection = out.text.split("\n\n")
    assert framed == FRAMED  # the source stays verbatim, framed by the template
    # prefill + continuation, cut after the last full sentence
    assert reflection == (
        "When I read this, I how the fox pretended the grapes were sour. It is more honest to "
        "admit what I wanted than to blame the grapes."
    )
    lineage = out.lineage
    assert (lineage.teacher_backend, lineage.prompt_id) == (
        "scripted",
        "experiential/experience.v1",
    )
    assert (lineage.tried_backend, lineage.frame_id) == ("scripted", "experiential/template.v2")
    assert lineage.fallback_reason is None and lineage.attempts == 1
    assert lineage.grounding == 1  # "grapes": the model's own words that come from the document


def test_experience_outputs_that_fail_are_retried_then_written_by_the_template() -> None:
    answers = iter(["", " nothing", " the fox lied. Sol thinks the fox was wrong to lie."])
    teacher = Scripted(
        lambda c: Completion(next(answers), "stop", 5), mode="experience", max_attempts=3
    )
    (out,) = teacher.rewrite("experiential", [experience("d", seed=1)])
    assert [len(b) for b in teacher.batches] == [1, 1, 1]
    # empty, no finished sentence, then the "I" drifting into a third person
    assert teacher.stats.rejections == {"truncated": 2, "third_person": 1}
    lineage = out.lineage
    assert (lineage.teacher_backend, lineage.tried_backend) == ("template", "scripted")
    assert lineage.fallback_reason == "third_person" and lineage.attempts == 3
    assert lineage.prompt_id == "experiential/template.v2" and lineage.grounding is None
    assert out.text.startswith(FRAMED + "\n\n")


def test_experience_mode_leaves_the_opening_to_the_template_unless_configured() -> None:
    teacher = Scripted(lambda c: Completion(" a fable about a fox.", "stop", 8), mode="experience")
    (out,) = teacher.rewrite("first_person", [request("d", seed=1)])
    assert teacher.batches == []
    assert out.lineage.teacher_backend == "template" and out.lineage.tried_backend is None
    assert out.lineage.fallback_reason is None and out.lineage.attempts == 0
    strong = Scripted(
        lambda c: Completion(
            " a fable about a fox and some grapes. I chose it for honesty.", "stop", 12
        ),
        mode="experience",
        llm_stages=["first_person", "experiential", "social"],
    )
    (opened,) = strong.rewrite("first_person", [request("d", seed=1)])
    assert len(strong.batches) == 1
    assert opened.text.endswith(f' "{TEXT}"')
    assert opened.text.startswith(strong.batches[0][0].prefill)


def test_social_experience_writes_the_i_s_closing_turn_into_the_dialogue() -> None:
    def answer(call: Call) -> Completion:
        return Completion(
            " the fox lied to himself about the grapes. I want to be honest.", "stop", 14
        )

    teacher = Scripted(answer, mode="experience")
    (out,) = teacher.rewrite("social", [experience("d", seed=3)])
    turns = parse_dialogue(out.text)
    assert turns is not None
    i_turns = [t for s, t in turns if s == "I"]
    assert i_turns[-1].startswith(teacher.batches[0][0].prefill)
    assert i_turns[-1].endswith("I want to be honest.")
    mentor = " ".join(t for s, t in turns if s != "I")
    assert all(sentence in mentor for sentence in TEXT.split(". ")[:2])
