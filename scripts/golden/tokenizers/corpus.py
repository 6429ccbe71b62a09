"""The tokenizer test corpus: the texts every tokenizer golden is computed over.

Deterministic (no randomness): writes Tests/Fixtures/tokenizers/corpus.jsonl, one {"text": ...} a row.
"""
import json
import os

ROWS = [
    "",
    " ",
    "  ",
    "\n",
    "\t",
    "Hello world",
    " Hello world",
    "Hello world ",
    "  leading and trailing spaces  ",
    "The quick brown fox jumps over the lazy dog!!\n\n",
    "A quick brown fox jumps over the lazy dog!!\n\n",
    "It's, they're, we've, I'm, you'll, he'd, IT'S, THEY'RE, We'Ve",
    "runs of spaces:     five,          ten, then tabs\t\t\tand newlines\n\n\n\nend",
    "mixed \r\n windows \r\n line endings \r\r and \u000b vertical \u000c form feed",
    "digits 1 12 123 1234 12345 123456 1234567 3.14159265358979323846 1,000,000 and 2024-11-29",
    "a long digit run 98765432109876543210987654321098765432109876543210",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot product\n\tprintf(\"%d\\n\", sum);",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "<html><body><p class=\"x\">Text &amp; more</p></body></html>",
    "Chinese: 我爱自然语言处理。今天天气很好，我们去公园散步吧！",
    "Japanese: 吾輩は猫である。名前はまだ無い。カタカナとひらがな、そして漢字。",
    "Korean: 안녕하세요, 세계! 한국어 텍스트입니다.",
    "Arabic: مرحبا بالعالم، هذه جملة باللغة العربية مع أرقام ١٢٣٤٥.",
    "Hebrew: שלום עולם, זה משפט בעברית.",
    "Devanagari: नमस्ते दुनिया, यह हिंदी में एक वाक्य है। क्षत्रिय",
    "Thai: สวัสดีชาวโลก นี่คือประโยคภาษาไทย",
    "Russian: Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Greek: Γειά σου Κόσμε, ΑΒΓΔ αβγδ ΣΊΣΥΦΟΣ",
    "German: Grüße aus München, straße STRASSE Ärger Öl Übel ß ẞ",
    "French: Où est la bibliothèque ? Ça coûte 12,50 € — très cher !",
    "Vietnamese: Tiếng Việt có dấu: ắ ằ ẳ ẵ ặ ề ổ ữ",
    "Emoji: 😀😃😄 👍🏽 🇫🇷🇯🇵 ❤️ 🤖 done",
    "ZWJ: 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 family",
    "Combining marks: e\u0301 a\u0300 n\u0303 o\u0308 Z\u0335\u0321\u0322a\u0336\u0317l\u0334\u0325g\u0335o",
    "Precomposed vs decomposed: \u00e9 e\u0301 \u00c5 A\u030a \ufb01 \u2126 \u212b \u00bd \u2460 \uff21\uff22\uff23",
    "4-byte: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 𠀀𠀁 𓀀 🀄",
    "Symbols: ©®™ ±×÷ ∑∏∫ √∞ ≤≥≠ ←→↑↓ ♠♣♥♦ ★☆ ¥£€$",
    "Special tokens inside: <s> hello </s> <unk> <|begin_of_text|>x<|end_of_text|> <|eot_id|>",
    "More special: [INST] question [/INST] answer</s>[CLS] a [SEP] b [MASK] [PAD] <|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] What is 2+2? [/INST] 4</s>",
    "Pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongword",
    "x" * 300,
    "ab" * 120 + " " + "😀" * 20,
    "URL: https://example.com/path?query=1&b=2#frag email: someone@example.org",
    "Punctuation!!! ??? ... --- ;;; ::: ''' \"\"\" ``` ~~~ ^^^ ||| \\\\",
    "trailing newline\n",
    "\n\nleading newlines",
    "   \n   \n   ",
    "tab\tseparated\tvalues\t1\t2\t3",
    "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case",
    "Mixed中文and English混合text with 数字123",
    "ſ ǅ ǈ ǋ ǲ İ ı Ω ω ϐ ϑ ϕ ϖ ϰ ϱ ϵ ẛ ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ　１２３",
    "nbsp\u00a0here and\u2003em space and\u200bzero width\u2028line sep",
    "Hello\u0000null and \u007f del",
    "▁already▁has▁metaspace ▁▁",
    "Ġ Ċ byte-level lookalikes ĠĊ",
    "<0x41> <0x0A> byte fallback lookalikes",
    "The end.",
]


# Character pools for the seeded random "stress" corpus: every Unicode class the split regexes care about.
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\t", "\n", "\r\n", "\r",
    "'sS'tT'reRE've'mM'llLL'dD", ".,;:!?-_()[]{}<>\"'`~@#$%^&*+=/\\|", "éèêëàâäôöûüçñßÉÈÀÇÑ", "\u0301\u0300\u0308\u0327",
    "我爱自然语言处理今天天气很好", "ひらがなカタカナ", "한국어텍스트", "مرحبابالعالم", "नमस्तेदुनिया", "สวัสดีชาวโลก",
    "Привет мир", "αβγδΑΒΓΔ", "😀👍🏽🇫🇷❤️🤖", "\u200d", "\u00a0\u2003\u3000\u200b\u2028\u0085", "١٢٣٤٥٦٧٨٩٠", "½²³①Ⅻ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𠀀𓀀", "ﬁﬂÅΩ", "▁Ġ", "<s></s><unk>[INST][/INST]<|begin_of_text|><|eot_id|><|im_start|><|im_end|>[CLS][SEP]<|endoftext|>",
]


def stress_rows(n=150, seed=1234):
    """Seeded random strings mixing the pools (deterministic: Python's Mersenne Twister)."""
    import random
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 40)):
            pool = rng.choice(POOLS)
            if pool.startswith("<s>"):
                parts.append(rng.choice(["<s>", "</s>", "<unk>", "[INST]", "[/INST]", "<|begin_of_text|>", "<|eot_id|>",
                                         "<|im_start|>", "<|im_end|>", "[CLS]", "[SEP]", "<|endoftext|>"]))
            else:
                k = rng.randint(1, 6)
                parts.append("".join(rng.choice(pool) for _ in range(k)) if len(pool) > 2 else pool * k)
        rows.append("".join(parts))
    return rows


def write(path, rows=ROWS):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for text in rows:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    fix = os.path.join(os.path.dirname(__file__), "../../../Tests/Fixtures/tokenizers")
    write(os.path.join(fix, "corpus.jsonl"))
    write(os.path.join(fix, "stress.jsonl"), stress_rows())
