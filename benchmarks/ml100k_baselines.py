"""Simple baselines for the ML-100K SFT tasks on recforge's chronological split: per user, events
sorted by time (ties in file order), the last max(1, floor(0.1 n)) test, as many before them valid.
Rating: predict the training mean (global, the user's, the item's, or user + item bias). Preference
(rating >= 4 is a like): AUC of the item's mean training rating and of the user's like rate.
Usage: python3 benchmarks/ml100k_baselines.py ../shared/data/ml-100k/u.data"""
import collections
import math
import sys


def auc(scores, labels):
    pairs = sorted(zip(scores, labels))
    ranks, i = [0.0] * len(pairs), 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        for k in range(i, j):
            ranks[k] = (i + j + 1) / 2
        i = j
    pos = sum(l for _, l in pairs)
    neg = len(pairs) - pos
    return (sum(r for r, (_, l) in zip(ranks, pairs) if l) - pos * (pos + 1) / 2) / (pos * neg)


def main(path):
    users = collections.defaultdict(list)
    for line_no, line in enumerate(open(path)):
        u, i, r, t = line.split("\t")
        users[u].append((int(t), line_no, i, float(r)))
    train, test = [], []
    for u, events in users.items():
        events.sort()
        n = len(events)
        held = max(1, n // 10)
        train += [(u, i, r) for _, _, i, r in events[: n - 2 * held]]
        test += [(u, i, r) for _, _, i, r in events[n - held:]]
    mean = sum(r for _, _, r in train) / len(train)
    by_user, by_item = collections.defaultdict(list), collections.defaultdict(list)
    for u, i, r in train:
        by_user[u].append(r)
        by_item[i].append(r)
    user_mean = {u: sum(v) / len(v) for u, v in by_user.items()}
    item_mean = {i: sum(v) / len(v) for i, v in by_item.items()}
    item_bias = {i: sum(r - user_mean[u] for u, j, r in train if j == i) for i in by_item}
    item_bias = {i: b / (len(by_item[i]) + 5) for i, b in item_bias.items()}  # shrunk
    predictors = {
        "global mean": lambda u, i: mean,
        "user mean": lambda u, i: user_mean.get(u, mean),
        "item mean": lambda u, i: item_mean.get(i, mean),
        "user mean + shrunk item bias": lambda u, i: user_mean.get(u, mean) + item_bias.get(i, 0.0),
    }
    print(f"train {len(train)} events, test {len(test)}")
    for name, f in predictors.items():
        errors = [f(u, i) - r for u, i, r in test]
        rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
        mae = sum(abs(e) for e in errors) / len(errors)
        print(f"rating  {name:30s} RMSE {rmse:.4f}  MAE {mae:.4f}")
    labels = [1 if r >= 4 else 0 for _, _, r in test]
    for name, f in predictors.items():
        print(f"preference {name:27s} AUC {auc([f(u, i) for u, i, _ in test], labels):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
