/* answer-type.h — what kind of answer a question asks for ("how long":
 * a duration, "how much": a number), and whether a sentence has one, so
 * that the extractive answer quotes the sentence that says "within 30
 * days" before the one that only repeats the question's words. Internal
 * to the daemon (extract.c). */
#pragma once

typedef enum AnswerType {
        ANSWER_ANY = 0,      /* no particular kind */
        ANSWER_DURATION = 1, /* "how long", "time limit", "deadline", "wie lange", "plazo" */
        ANSWER_QUANTITY = 2, /* "how much", "how many", "what percentage", "combien" */
} AnswerType;

/**
 * answer_type_of() - the kind of answer the question @q (UTF-8, any case)
 * asks for, from its wording in English, German, French or Spanish.
 * A duration question is also a quantity question's kind of answer, not
 * the other way round: "how many days" is ANSWER_DURATION.
 */
AnswerType answer_type_of(const char *q);

/**
 * answer_type_matches() - whether the sentence @s (UTF-8) has an answer
 * of kind @t: for ANSWER_DURATION a number (digits or an English number
 * word) followed by a unit of time ("30 days", "14-day", "six years"),
 * for ANSWER_QUANTITY any number, a percentage or an amount. Always 0 for
 * ANSWER_ANY.
 */
int answer_type_matches(AnswerType t, const char *s);
