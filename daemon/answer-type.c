/* answer-type.c — see answer-type.h. Plain word scans, no regular
 * expressions: questions and sentences are short and bounded by the
 * extractor (EX_MAX_SENTENCE_BYTES, KB_MAX_QUERY_BYTES). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "answer-type.h"
#include "util.h"

static int is_word_byte(unsigned char c) {
        return isalnum(c) || c >= 0x80;
}

/* Is the character before @p (in @s) part of a word? "¿", "¡", "«" and
 * "»" (U+00A1, U+00BF, U+00AB, U+00BB) are not. */
static int word_before(const char *s, const char *p) {
        const unsigned char *u = (const unsigned char *) p;
        if (p == s)
                return 0;
        if (p - s >= 2 && u[-2] == 0xC2 &&
            (u[-1] == 0xA1 || u[-1] == 0xBF || u[-1] == 0xAB || u[-1] == 0xBB))
                return 0;
        return is_word_byte(u[-1]);
}

/* Does @s contain @phrase (ASCII lower case) case-insensitively, starting
 * and ending at word boundaries? */
static int has_phrase(const char *s, const char *phrase) {
        size_t n = strlen(phrase);
        for (const char *p = s; (p = strcasestr(p, phrase)); p++) {
                int start = !word_before(s, p);
                int end =
                        !is_word_byte((unsigned char) p[n]) || !is_word_byte((unsigned char) phrase[n - 1]);
                if (start && end)
                        return 1;
        }
        return 0;
}

static int has_any(const char *s, const char *const *phrases, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (has_phrase(s, phrases[i]))
                        return 1;
        return 0;
}

AnswerType answer_type_of(const char *q) {
        static const char *const duration[] = {
                "how long",
                "time limit",
                "time limits",
                "deadline",
                "deadlines",
                "how soon",
                "how quickly",
                "window",
                "how many days",
                "how many weeks",
                "how many months",
                "how many years",
                "how many hours",
                "how many minutes",
                "within how",
                "by when",
                "limitation period",
                "wie lange",
                "frist",
                "combien de temps",
                "délai",
                "delai",
                "cuánto tiempo",
                "cuanto tiempo",
                "plazo",
        };
        static const char *const quantity[] = {
                "how much", "how many",  "what percentage", "what percent", "what rate",        "threshold",
                "target",   "minimum",   "maximum",         "how high",     "how low",          "how hard",
                "how fast", "how often", "what age",        "how old",      "what temperature", "what dose",
                "dosage",   "how big",   "wie viel",        "wieviel",      "wie hoch",         "combien",
                "cuánto",   "cuanto",    "cuánta",          "cuántos",      "cuántas",
        };
        if (!q)
                return ANSWER_ANY;
        if (has_any(q, duration, ELEMENTSOF(duration)))
                return ANSWER_DURATION;
        if (has_any(q, quantity, ELEMENTSOF(quantity)) || strchr(q, '%'))
                return ANSWER_QUANTITY;
        return ANSWER_ANY;
}

/* English number words an answer writes ("one" only before a unit: "one
 * of them" is no quantity). */
static const char *const number_words[] = {
        "two",    "three",   "four",     "five",    "six",      "seven",   "eight",
        "nine",   "ten",     "eleven",   "twelve",  "fourteen", "fifteen", "eighteen",
        "twenty", "thirty",  "forty",    "fifty",   "sixty",    "seventy", "eighty",
        "ninety", "hundred", "thousand", "million", "half",     "double",  "twice",
};

static const char *const time_units[] = {
        "second", "minute", "hour", "day", "week", "fortnight", "month", "year",
};

/* The length of the number word or digit run at @p (at a word start), 0
 * if none. @with_one: "one" counts. */
static size_t number_at(const char *p, int with_one) {
        size_t n = 0;
        while (isdigit((unsigned char) p[n]) ||
               (n > 0 && (p[n] == '.' || p[n] == ',') && isdigit((unsigned char) p[n + 1])))
                n++;
        if (n > 0)
                return n;
        for (size_t i = 0; i < ELEMENTSOF(number_words); i++) {
                size_t l = strlen(number_words[i]);
                if (strncasecmp(p, number_words[i], l) == 0 && !is_word_byte((unsigned char) p[l]))
                        return l;
        }
        if (with_one && strncasecmp(p, "one", 3) == 0 && !is_word_byte((unsigned char) p[3]))
                return 3;
        return 0;
}

/* A unit of time at @p: "day", "days", "working days" counted as such. */
static int time_unit_at(const char *p) {
        if (strncasecmp(p, "working ", 8) == 0 || strncasecmp(p, "calendar ", 9) == 0 ||
            strncasecmp(p, "business ", 9) == 0)
                p = strchr(p, ' ') + 1;
        for (size_t i = 0; i < ELEMENTSOF(time_units); i++) {
                size_t l = strlen(time_units[i]);
                if (strncasecmp(p, time_units[i], l) != 0)
                        continue;
                if (p[l] == 's' || p[l] == 'S')
                        l++;
                if (!is_word_byte((unsigned char) p[l]))
                        return 1;
        }
        return 0;
}

int answer_type_matches(AnswerType t, const char *s) {
        if (t == ANSWER_ANY || !s)
                return 0;
        for (const char *p = s; *p; p++) {
                if (word_before(s, p))
                        continue; /* only at word starts */
                if (t == ANSWER_QUANTITY && (*p == '%' || *p == '$' || strncmp(p, "\xc2\xa3", 2) == 0 ||
                                             strncmp(p, "\xe2\x82\xac", 3) == 0))
                        return 1;
                size_t n = number_at(p, t == ANSWER_DURATION);
                if (n == 0)
                        continue;
                if (t == ANSWER_QUANTITY)
                        return 1;
                const char *u = p + n;
                if (*u == ' ' || *u == '-')
                        u++;
                if (time_unit_at(u))
                        return 1;
        }
        return 0;
}
