/* spelling.c — see spelling.h. */
#include <pthread.h>
#include <string.h>

#include "spelling.h"
#include "util.h"

typedef enum {
        SP_STEM, /* any ending: "colour" -> "colours", "coloured", "colourful" */
        SP_WORD, /* the word or its plural: "licence", "licences" (not "licensed") */
        SP_ISE,  /* -ise verb and noun endings only: "organise", "organisation" (not "organism") */
} SpellKind;

static const struct {
        const char *gb, *us;
        SpellKind kind;
} table[] = {
        /* -our */
        {"armour", "armor", SP_STEM},
        {"behaviour", "behavior", SP_STEM},
        {"colour", "color", SP_STEM},
        {"endeavour", "endeavor", SP_STEM},
        {"favour", "favor", SP_STEM},
        {"flavour", "flavor", SP_STEM},
        {"harbour", "harbor", SP_STEM},
        {"honour", "honor", SP_STEM},
        {"humour", "humor", SP_STEM},
        {"labour", "labor", SP_STEM},
        {"neighbour", "neighbor", SP_STEM},
        {"odour", "odor", SP_STEM},
        {"rumour", "rumor", SP_STEM},
        {"tumour", "tumor", SP_STEM},
        {"vapour", "vapor", SP_STEM},
        {"vigour", "vigor", SP_STEM},
        /* -ce / -se nouns */
        {"defence", "defense", SP_WORD},
        {"licence", "license", SP_WORD},
        {"offence", "offense", SP_WORD},
        {"pretence", "pretense", SP_WORD},
        /* -re / -er */
        {"calibre", "caliber", SP_WORD},
        {"centre", "center", SP_WORD},
        {"fibre", "fiber", SP_WORD},
        {"litre", "liter", SP_WORD},
        {"metre", "meter", SP_WORD},
        {"theatre", "theater", SP_WORD},
        /* medicine: ae, oe */
        {"anaemi", "anemi", SP_STEM},
        {"anaesthe", "anesthe", SP_STEM},
        {"apnoea", "apnea", SP_STEM},
        {"caesarean", "cesarean", SP_STEM},
        {"coeliac", "celiac", SP_STEM},
        {"diarrhoea", "diarrhea", SP_STEM},
        {"dyspnoea", "dyspnea", SP_STEM},
        {"foetal", "fetal", SP_STEM},
        {"foetus", "fetus", SP_STEM},
        {"gynaecolog", "gynecolog", SP_STEM},
        {"haematolog", "hematolog", SP_STEM},
        {"haematoma", "hematoma", SP_STEM},
        {"haemoglobin", "hemoglobin", SP_STEM},
        {"haemophili", "hemophili", SP_STEM},
        {"haemorrh", "hemorrh", SP_STEM},
        {"ischaemi", "ischemi", SP_STEM},
        {"leukaemi", "leukemi", SP_STEM},
        {"oedema", "edema", SP_STEM},
        {"oesophag", "esophag", SP_STEM},
        {"oestrogen", "estrogen", SP_STEM},
        {"orthopaedic", "orthopedic", SP_STEM},
        {"paediatric", "pediatric", SP_STEM},
        /* -ise / -ize */
        {"apologis", "apologiz", SP_ISE},
        {"authoris", "authoriz", SP_ISE},
        {"capitalis", "capitaliz", SP_ISE},
        {"categoris", "categoriz", SP_ISE},
        {"customis", "customiz", SP_ISE},
        {"finalis", "finaliz", SP_ISE},
        {"hospitalis", "hospitaliz", SP_ISE},
        {"immunis", "immuniz", SP_ISE},
        {"initialis", "initializ", SP_ISE},
        {"itemis", "itemiz", SP_ISE},
        {"minimis", "minimiz", SP_ISE},
        {"maximis", "maximiz", SP_ISE},
        {"normalis", "normaliz", SP_ISE},
        {"optimis", "optimiz", SP_ISE},
        {"organis", "organiz", SP_ISE},
        {"prioritis", "prioritiz", SP_ISE},
        {"recognis", "recogniz", SP_ISE},
        {"serialis", "serializ", SP_ISE},
        {"summaris", "summariz", SP_ISE},
        {"synchronis", "synchroniz", SP_ISE},
        {"utilis", "utiliz", SP_ISE},
        {"visualis", "visualiz", SP_ISE},
        /* single words */
        {"ageing", "aging", SP_WORD},
        {"aluminium", "aluminum", SP_WORD},
        {"analyse", "analyze", SP_WORD},
        {"analysed", "analyzed", SP_WORD},
        {"analysing", "analyzing", SP_WORD},
        {"cancelled", "canceled", SP_WORD},
        {"cancelling", "canceling", SP_WORD},
        {"catalogue", "catalog", SP_WORD},
        {"dialogue", "dialog", SP_WORD},
        {"enrolment", "enrollment", SP_WORD},
        {"fulfil", "fulfill", SP_WORD},
        {"instalment", "installment", SP_WORD},
        {"jewellery", "jewelry", SP_WORD},
        {"judgement", "judgment", SP_WORD},
        {"labelled", "labeled", SP_WORD},
        {"labelling", "labeling", SP_WORD},
        {"manoeuvre", "maneuver", SP_WORD},
        {"modelling", "modeling", SP_WORD},
        {"mould", "mold", SP_WORD},
        {"paralyse", "paralyze", SP_WORD},
        {"programme", "program", SP_WORD},
        {"sceptical", "skeptical", SP_WORD},
        {"travelled", "traveled", SP_WORD},
        {"travelling", "traveling", SP_WORD},
};

/* Entries by the first letter of each spelling, built once: a look-up
 * compares a word with the few entries of its letter only. */
static struct {
        unsigned char start[2][27]; /* [0] British, [1] American; entries of letter c: [c, c+1) */
        unsigned char order[2][ELEMENTSOF(table)];
} idx;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static const char *spelling_of(size_t i, int american) {
        return american ? table[i].us : table[i].gb;
}

static void idx_build(void) {
        for (int d = 0; d < 2; d++) {
                size_t k = 0;
                for (int c = 0; c < 26; c++) {
                        idx.start[d][c] = (unsigned char) k;
                        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                                if (spelling_of(i, d)[0] == 'a' + c)
                                        idx.order[d][k++] = (unsigned char) i;
                }
                idx.start[d][26] = (unsigned char) k;
        }
}

static int ending_ok(SpellKind kind, const char *rest, size_t n) {
        static const char *const ise[] = {"e", "ed", "es", "ing", "ation", "ations", "er", "ers"};
        switch (kind) {
        case SP_STEM:
                return 1;
        case SP_WORD:
                return n == 0 || (n == 1 && rest[0] == 's');
        case SP_ISE:
                for (size_t i = 0; i < ELEMENTSOF(ise); i++)
                        if (strlen(ise[i]) == n && memcmp(rest, ise[i], n) == 0)
                                return 1;
                return 0;
        }
        return 0;
}

size_t spelling_variant(const char *w, size_t n, int to_american, char *buf, size_t size) {
        if (!w || n < 4 || w[0] < 'a' || w[0] > 'z')
                return 0;
        (void) pthread_once(&idx_once, idx_build);
        int c = w[0] - 'a';
        for (int d = 0; d < (to_american ? 1 : 2); d++)
                for (unsigned k = idx.start[d][c]; k < idx.start[d][c + 1]; k++) {
                        size_t i = idx.order[d][k];
                        const char *from = spelling_of(i, d), *to = spelling_of(i, !d);
                        size_t fl = strlen(from), tl = strlen(to);
                        if (n < fl || memcmp(w, from, fl) != 0 || !ending_ok(table[i].kind, w + fl, n - fl))
                                continue;
                        if (tl + (n - fl) + 1 > size)
                                return 0;
                        memcpy(buf, to, tl);
                        memcpy(buf + tl, w + fl, n - fl);
                        buf[tl + n - fl] = 0;
                        return tl + n - fl;
                }
        return 0;
}
