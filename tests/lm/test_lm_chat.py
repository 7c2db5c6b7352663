from gr2.lm.chat import IGNORE_INDEX, ChatCollator, ChatExample, encode_examples

SYSTEM = "You are a shopping recommender."


def test_loss_covers_exactly_the_assistant_turn(tiny, sid_map):
    _, tokenizer = tiny
    sid = sid_map.text(next(iter(sid_map.codes)))
    example = ChatExample("sequential", f"History: {sid}\nNext item?", sid)
    [row], dropped = encode_examples(tokenizer, SYSTEM, [example], max_length=512)
    assert dropped == 0
    learned = [token for token, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(learned) == f"{sid}<|im_end|>\n"
    prompt = [token for token, label in zip(row["input_ids"], row["labels"], strict=True) if label == IGNORE_INDEX]
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    assert SYSTEM in tokenizer.decode(prompt)


def test_examples_longer_than_the_limit_are_dropped_and_counted(tiny):
    _, tokenizer = tiny
    short, long = ChatExample("t", "hi", "yo"), ChatExample("t", "word " * 200, "yo")
    rows, dropped = encode_examples(tokenizer, SYSTEM, [short, long, short], max_length=64)
    assert len(rows) == 2 and dropped == 1


def test_collator_pads_right_and_masks_padding():
    batch = ChatCollator(pad_token_id=0)(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
