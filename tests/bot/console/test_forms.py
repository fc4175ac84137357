"""A modal becomes prompts with defaults; the answers are Slack's `state.values`."""

from __future__ import annotations

import pytest

from bot.console.forms import FormCancelled, fill_form

VIEW = {
    "type": "modal",
    "callback_id": "create_job",
    "title": {"type": "plain_text", "text": "Fine-tune a model"},
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Pick your data"}},
        {
            "type": "input",
            "block_id": "model",
            "label": {"type": "plain_text", "text": "Model"},
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": [
                    {"text": {"type": "plain_text", "text": "big"}, "value": "big"},
                    {"text": {"type": "plain_text", "text": "small"}, "value": "small"},
                ],
                "initial_option": {
                    "text": {"type": "plain_text", "text": "small"},
                    "value": "small",
                },
            },
        },
        {
            "type": "input",
            "block_id": "epochs",
            "label": {"type": "plain_text", "text": "Epochs"},
            "element": {"type": "number_input", "action_id": "value", "initial_value": "3"},
        },
        {
            "type": "input",
            "block_id": "suffix",
            "optional": True,
            "label": {"type": "plain_text", "text": "Suffix"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "flags",
            "optional": True,
            "label": {"type": "plain_text", "text": "Options"},
            "element": {
                "type": "checkboxes",
                "action_id": "value",
                "options": [
                    {"text": {"type": "plain_text", "text": "LoRA"}, "value": "lora"},
                    {"text": {"type": "plain_text", "text": "Packing"}, "value": "packing"},
                ],
            },
        },
    ],
}


class Answers:
    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []
        self.said: list[str] = []

    async def ask(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        return self.answers.pop(0)

    def say(self, lines: list[str]) -> None:
        self.said.extend(lines)


async def test_enter_keeps_each_default_and_answers_come_back_as_slack_state() -> None:
    answers = Answers("", "", "", "")
    values = await fill_form(VIEW, answers.ask, answers.say)
    assert answers.said[0].startswith("── Fine-tune a model ──")
    assert answers.prompts == [
        "    choose a number [2]: ",
        "  Epochs [3]: ",
        "  Suffix (optional): ",
        "    choose numbers, comma-separated: ",
    ]
    assert "Pick your data" in answers.said
    assert values["model"]["value"]["selected_option"]["value"] == "small"
    assert values["epochs"]["value"] == {"type": "number_input", "value": "3"}
    assert values["suffix"]["value"] == {"type": "plain_text_input", "value": None}
    assert values["flags"]["value"] == {"type": "checkboxes", "selected_options": []}


async def test_choices_by_number_or_value_and_wrong_answers_are_asked_again() -> None:
    answers = Answers("7", "big", "", "v2", "1,packing")
    values = await fill_form(VIEW, answers.ask, answers.say)
    assert "  `7` is not a number from 1 to 2." in answers.said
    assert values["model"]["value"]["selected_option"]["value"] == "big"
    assert values["suffix"]["value"]["value"] == "v2"
    assert [o["value"] for o in values["flags"]["value"]["selected_options"]] == [
        "lora",
        "packing",
    ]


async def test_a_required_field_without_default_is_asked_until_answered() -> None:
    view = {
        "blocks": [
            {
                "type": "input",
                "block_id": "name",
                "label": {"type": "plain_text", "text": "Name"},
                "element": {"type": "plain_text_input", "action_id": "v"},
            }
        ]
    }
    answers = Answers("", "run-1")
    values = await fill_form(view, answers.ask, answers.say)
    assert "  Name is required." in answers.said
    assert values == {"name": {"v": {"type": "plain_text_input", "value": "run-1"}}}


@pytest.mark.parametrize("answer", ["cancel", None])
async def test_cancel_or_the_end_of_input_stops_the_form(answer: str | None) -> None:
    with pytest.raises(FormCancelled):
        await fill_form(VIEW, Answers(answer).ask, Answers().say)


async def test_only_the_fields_named_are_asked_again() -> None:
    answers = Answers("5")
    values = await fill_form(VIEW, answers.ask, answers.say, only={"epochs"})
    assert answers.said[0].startswith("── Fine-tune a model again ──")
    assert answers.prompts == ["  Epochs [3]: "]
    assert values == {"epochs": {"value": {"type": "number_input", "value": "5"}}}
