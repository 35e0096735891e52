import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CharTokenizer, encodeExample, loadEvalSet, parseEvalJsonl } from "./eval-data.js";
import { MergeloomError } from "@mergeloom/proto/errors";
import { FIXTURE } from "./test-weights.js";

const VOCAB = {
  "<pad>": 0,
  "<bos>": 1,
  "<eos>": 2,
  "0": 3,
  "1": 4,
  "2": 5,
  "3": 6,
  "4": 7,
  "5": 8,
  "6": 9,
  "7": 10,
  "8": 11,
  "9": 12,
  "+": 13,
  "-": 14,
  "*": 15,
  "=": 16,
  "|": 17,
  r: 18,
  m: 19,
  x: 20,
};
const tok = CharTokenizer.fromVocab(VOCAB, "vocab.json");

function evalFailed(re: RegExp) {
  return (err: unknown) => err instanceof MergeloomError && err.code === "EVAL_FAILED" && re.test(err.message);
}

describe("CharTokenizer", () => {
  test("the README example <bos>12+34=46<eos> encodes to [1,4,5,13,6,7,16,7,9,2] with P=6 and A=2", () => {
    const ex = encodeExample(tok, "12+34=", "46", 1, "x");
    assert.deepEqual([...ex.tokens], [1, 4, 5, 13, 6, 7, 16, 7, 9, 2]);
    assert.equal(ex.promptLength, 6);
    assert.equal(ex.answerLength, 2);
    assert.equal(tok.vocabSize, 21);
  });

  test("the fixture vocab.json loads with pad/bos/eos ids 0/1/2", async () => {
    const t = await CharTokenizer.fromVocabFile(join(FIXTURE, "base/vocab.json"));
    assert.deepEqual([t.padId, t.bosId, t.eosId, t.vocabSize], [0, 1, 2, 21]);
  });

  test("an unknown character is an EVAL_FAILED error naming where, the character and its position", () => {
    assert.throws(() => tok.encode("12/3", "add.jsonl:4 prompt"), evalFailed(/add\.jsonl:4 prompt.*"\/" \(U\+002F\) at position 3/));
  });

  test("a vocabulary without <eos> is rejected and the required specials are listed", () => {
    const { "<eos>": _drop, ...rest } = VOCAB;
    assert.throws(() => CharTokenizer.fromVocab(rest, "v.json"), evalFailed(/v\.json: special token <eos> is missing \(required: <pad>, <bos>, <eos>\)/));
  });

  test("a vocabulary with a multi-character token is rejected", () => {
    assert.throws(() => CharTokenizer.fromVocab({ ...VOCAB, ab: 21 }, "v.json"), evalFailed(/token "ab" is neither one character/));
  });
});

describe("eval JSONL", () => {
  test("lines are tokenized, blank lines skipped, and the set is named after the file", () => {
    const set = parseEvalJsonl('{"prompt": "1+2=", "answer": "3"}\n\n{"prompt": "r12=", "answer": "21"}\n', "/d/add.jsonl", tok);
    assert.equal(set.name, "add");
    assert.equal(set.examples.length, 2);
    assert.equal(set.examples[1].line, 3);
    assert.deepEqual([...set.examples[1].tokens], [1, 18, 4, 5, 16, 5, 4, 2]);
  });

  test("bad JSON names the file and line", () => {
    assert.throws(
      () => parseEvalJsonl('{"prompt": "1+2=", "answer": "3"}\n{"prompt": "1+', "sub.jsonl", tok),
      evalFailed(/load eval data sub\.jsonl:2: not valid JSON/),
    );
  });

  test("a missing field names the file, line and field", () => {
    assert.throws(() => parseEvalJsonl('{"prompt": "1+2="}', "mul.jsonl", tok), evalFailed(/mul\.jsonl:1: field "answer" is missing/));
    assert.throws(() => parseEvalJsonl('{"prompt": 12, "answer": "3"}', "mul.jsonl", tok), evalFailed(/mul\.jsonl:1: field "prompt" is not a string/));
  });

  test("an unknown character in an answer names file, line and field", () => {
    assert.throws(() => parseEvalJsonl('{"prompt": "1+2=", "answer": "3 "}', "rev.jsonl", tok), evalFailed(/rev\.jsonl:1 answer: character " "/));
  });

  test("the fixture eval files load 500 examples each", async () => {
    for (const t of ["add", "sub", "mul", "rev"]) {
      const set = await loadEvalSet(join(FIXTURE, `eval/${t}.jsonl`), tok);
      assert.equal(set.examples.length, 500);
    }
  });

  test("a missing file is an EVAL_FAILED error naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "evaldata-"));
    writeFileSync(join(dir, "empty.jsonl"), "\n");
    await assert.rejects(loadEvalSet(join(dir, "nope.jsonl"), tok), evalFailed(/nope\.jsonl/));
    await assert.rejects(loadEvalSet(join(dir, "empty.jsonl"), tok), evalFailed(/has no examples/));
  });
});
