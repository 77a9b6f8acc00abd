"""Baselines of the S-DPO LastFM table: random choice among the candidates (1/K in expectation)
and popularity (the candidate seen most often in the training file's histories and answers),
HitRatio@1 on the first LIMIT test examples.

Usage: sdpo_baselines.py TRAIN.json TEST.json [LIMIT]"""
import collections
import json
import sys


def main():
    train = json.load(open(sys.argv[1]))
    test = json.load(open(sys.argv[2]))
    if len(sys.argv) > 3 and int(sys.argv[3]) > 0:
        test = test[:int(sys.argv[3])]
    counts = collections.Counter()
    for example in train:
        counts.update(a for a in example["historyList"].split("::") if a)
        counts[example["trueSelection"]] += 1
    hits = sum(max(e["itemList"], key=lambda c: counts[c]) == e["trueSelection"] for e in test)
    k = sum(len(e["itemList"]) for e in test) / len(test)
    print(json.dumps({"examples": len(test), "random_hr@1": 1 / k,
                      "popularity_hr@1": hits / len(test)}))


if __name__ == "__main__":
    main()
