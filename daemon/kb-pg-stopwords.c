/* kb-pg-stopwords.c — the stop words of PostgreSQL's text-search
 * configurations english, german, french and spanish (the Snowball
 * project's lists, BSD-licensed, as PostgreSQL 15 ships them in
 * tsearch_data/LANGUAGE.stop), so that kb-pg-terms.c drops the words
 * to_tsvector() drops. Generated from those files; byte-sorted for
 * bsearch(). */
#include <stdlib.h>
#include <string.h>

#include "kb-pg-terms.h"
#include "util.h"

static const char *const stop_english[] = {
        "a",          "about", "above",   "after",   "again",  "against",    "all",     "am",    "an",
        "and",        "any",   "are",     "as",      "at",     "be",         "because", "been",  "before",
        "being",      "below", "between", "both",    "but",    "by",         "can",     "did",   "do",
        "does",       "doing", "don",     "down",    "during", "each",       "few",     "for",   "from",
        "further",    "had",   "has",     "have",    "having", "he",         "her",     "here",  "hers",
        "herself",    "him",   "himself", "his",     "how",    "i",          "if",      "in",    "into",
        "is",         "it",    "its",     "itself",  "just",   "me",         "more",    "most",  "my",
        "myself",     "no",    "nor",     "not",     "now",    "of",         "off",     "on",    "once",
        "only",       "or",    "other",   "our",     "ours",   "ourselves",  "out",     "over",  "own",
        "s",          "same",  "she",     "should",  "so",     "some",       "such",    "t",     "than",
        "that",       "the",   "their",   "theirs",  "them",   "themselves", "then",    "there", "these",
        "they",       "this",  "those",   "through", "to",     "too",        "under",   "until", "up",
        "very",       "was",   "we",      "were",    "what",   "when",       "where",   "which", "while",
        "who",        "whom",  "why",     "will",    "with",   "you",        "your",    "yours", "yourself",
        "yourselves",
};

static const char *const stop_german[] = {
        "aber",      "alle",      "allem",     "allen",   "aller",     "alles",    "als",     "also",
        "am",        "an",        "ander",     "andere",  "anderem",   "anderen",  "anderer", "anderes",
        "anderm",    "andern",    "anderr",    "anders",  "auch",      "auf",      "aus",     "bei",
        "bin",       "bis",       "bist",      "da",      "damit",     "dann",     "das",     "dasselbe",
        "dazu",      "daß",       "dein",      "deine",   "deinem",    "deinen",   "deiner",  "deines",
        "dem",       "demselben", "den",       "denn",    "denselben", "der",      "derer",   "derselbe",
        "derselben", "des",       "desselben", "dessen",  "dich",      "die",      "dies",    "diese",
        "dieselbe",  "dieselben", "diesem",    "diesen",  "dieser",    "dieses",   "dir",     "doch",
        "dort",      "du",        "durch",     "ein",     "eine",      "einem",    "einen",   "einer",
        "eines",     "einig",     "einige",    "einigem", "einigen",   "einiger",  "einiges", "einmal",
        "er",        "es",        "etwas",     "euch",    "euer",      "eure",     "eurem",   "euren",
        "eurer",     "eures",     "für",       "gegen",   "gewesen",   "hab",      "habe",    "haben",
        "hat",       "hatte",     "hatten",    "hier",    "hin",       "hinter",   "ich",     "ihm",
        "ihn",       "ihnen",     "ihr",       "ihre",    "ihrem",     "ihren",    "ihrer",   "ihres",
        "im",        "in",        "indem",     "ins",     "ist",       "jede",     "jedem",   "jeden",
        "jeder",     "jedes",     "jene",      "jenem",   "jenen",     "jener",    "jenes",   "jetzt",
        "kann",      "kein",      "keine",     "keinem",  "keinen",    "keiner",   "keines",  "können",
        "könnte",    "machen",    "man",       "manche",  "manchem",   "manchen",  "mancher", "manches",
        "mein",      "meine",     "meinem",    "meinen",  "meiner",    "meines",   "mich",    "mir",
        "mit",       "muss",      "musste",    "nach",    "nicht",     "nichts",   "noch",    "nun",
        "nur",       "ob",        "oder",      "ohne",    "sehr",      "sein",     "seine",   "seinem",
        "seinen",    "seiner",    "seines",    "selbst",  "sich",      "sie",      "sind",    "so",
        "solche",    "solchem",   "solchen",   "solcher", "solches",   "soll",     "sollte",  "sondern",
        "sonst",     "um",        "und",       "uns",     "unse",      "unsem",    "unsen",   "unser",
        "unses",     "unter",     "viel",      "vom",     "von",       "vor",      "war",     "waren",
        "warst",     "was",       "weg",       "weil",    "weiter",    "welche",   "welchem", "welchen",
        "welcher",   "welches",   "wenn",      "werde",   "werden",    "wie",      "wieder",  "will",
        "wir",       "wird",      "wirst",     "wo",      "wollen",    "wollte",   "während", "würde",
        "würden",    "zu",        "zum",       "zur",     "zwar",      "zwischen", "über",
};

static const char *const stop_french[] = {
        "ai",      "aie",      "aient",   "aies",     "ait",     "as",      "au",      "aura",
        "aurai",   "auraient", "aurais",  "aurait",   "auras",   "aurez",   "auriez",  "aurions",
        "aurons",  "auront",   "aux",     "avaient",  "avais",   "avait",   "avec",    "avez",
        "aviez",   "avions",   "avons",   "ayant",    "ayante",  "ayantes", "ayants",  "ayez",
        "ayons",   "c",        "ce",      "ces",      "d",       "dans",    "de",      "des",
        "du",      "elle",     "en",      "es",       "est",     "et",      "eu",      "eue",
        "eues",    "eurent",   "eus",     "eusse",    "eussent", "eusses",  "eussiez", "eussions",
        "eut",     "eux",      "eûmes",   "eût",      "eûtes",   "furent",  "fus",     "fusse",
        "fussent", "fusses",   "fussiez", "fussions", "fut",     "fûmes",   "fût",     "fûtes",
        "il",      "j",        "je",      "l",        "la",      "le",      "leur",    "lui",
        "m",       "ma",       "mais",    "me",       "mes",     "moi",     "mon",     "même",
        "n",       "ne",       "nos",     "notre",    "nous",    "on",      "ont",     "ou",
        "par",     "pas",      "pour",    "qu",       "que",     "qui",     "s",       "sa",
        "se",      "sera",     "serai",   "seraient", "serais",  "serait",  "seras",   "serez",
        "seriez",  "serions",  "serons",  "seront",   "ses",     "soient",  "sois",    "soit",
        "sommes",  "son",      "sont",    "soyez",    "soyons",  "suis",    "sur",     "t",
        "ta",      "te",       "tes",     "toi",      "ton",     "tu",      "un",      "une",
        "vos",     "votre",    "vous",    "y",        "à",       "étaient", "étais",   "était",
        "étant",   "étante",   "étantes", "étants",   "étiez",   "étions",  "été",     "étée",
        "étées",   "étés",     "êtes",
};

static const char *const stop_spanish[] = {
        "a",           "al",          "algo",         "algunas",
        "algunos",     "ante",        "antes",        "como",
        "con",         "contra",      "cual",         "cuando",
        "de",          "del",         "desde",        "donde",
        "durante",     "e",           "el",           "ella",
        "ellas",       "ellos",       "en",           "entre",
        "era",         "erais",       "eran",         "eras",
        "eres",        "es",          "esa",          "esas",
        "ese",         "eso",         "esos",         "esta",
        "estaba",      "estabais",    "estaban",      "estabas",
        "estad",       "estada",      "estadas",      "estado",
        "estados",     "estamos",     "estando",      "estar",
        "estaremos",   "estará",      "estarán",      "estarás",
        "estaré",      "estaréis",    "estaría",      "estaríais",
        "estaríamos",  "estarían",    "estarías",     "estas",
        "este",        "estemos",     "esto",         "estos",
        "estoy",       "estuve",      "estuviera",    "estuvierais",
        "estuvieran",  "estuvieras",  "estuvieron",   "estuviese",
        "estuvieseis", "estuviesen",  "estuvieses",   "estuvimos",
        "estuviste",   "estuvisteis", "estuviéramos", "estuviésemos",
        "estuvo",      "está",        "estábamos",    "estáis",
        "están",       "estás",       "esté",         "estéis",
        "estén",       "estés",       "fue",          "fuera",
        "fuerais",     "fueran",      "fueras",       "fueron",
        "fuese",       "fueseis",     "fuesen",       "fueses",
        "fui",         "fuimos",      "fuiste",       "fuisteis",
        "fuéramos",    "fuésemos",    "ha",           "habida",
        "habidas",     "habido",      "habidos",      "habiendo",
        "habremos",    "habrá",       "habrán",       "habrás",
        "habré",       "habréis",     "habría",       "habríais",
        "habríamos",   "habrían",     "habrías",      "habéis",
        "había",       "habíais",     "habíamos",     "habían",
        "habías",      "han",         "has",          "hasta",
        "hay",         "haya",        "hayamos",      "hayan",
        "hayas",       "hayáis",      "he",           "hemos",
        "hube",        "hubiera",     "hubierais",    "hubieran",
        "hubieras",    "hubieron",    "hubiese",      "hubieseis",
        "hubiesen",    "hubieses",    "hubimos",      "hubiste",
        "hubisteis",   "hubiéramos",  "hubiésemos",   "hubo",
        "la",          "las",         "le",           "les",
        "lo",          "los",         "me",           "mi",
        "mis",         "mucho",       "muchos",       "muy",
        "más",         "mí",          "mía",          "mías",
        "mío",         "míos",        "nada",         "ni",
        "no",          "nos",         "nosotras",     "nosotros",
        "nuestra",     "nuestras",    "nuestro",      "nuestros",
        "o",           "os",          "otra",         "otras",
        "otro",        "otros",       "para",         "pero",
        "poco",        "por",         "porque",       "que",
        "quien",       "quienes",     "qué",          "se",
        "sea",         "seamos",      "sean",         "seas",
        "sentid",      "sentida",     "sentidas",     "sentido",
        "sentidos",    "seremos",     "será",         "serán",
        "serás",       "seré",        "seréis",       "sería",
        "seríais",     "seríamos",    "serían",       "serías",
        "seáis",       "siente",      "sin",          "sintiendo",
        "sobre",       "sois",        "somos",        "son",
        "soy",         "su",          "sus",          "suya",
        "suyas",       "suyo",        "suyos",        "sí",
        "también",     "tanto",       "te",           "tendremos",
        "tendrá",      "tendrán",     "tendrás",      "tendré",
        "tendréis",    "tendría",     "tendríais",    "tendríamos",
        "tendrían",    "tendrías",    "tened",        "tenemos",
        "tenga",       "tengamos",    "tengan",       "tengas",
        "tengo",       "tengáis",     "tenida",       "tenidas",
        "tenido",      "tenidos",     "teniendo",     "tenéis",
        "tenía",       "teníais",     "teníamos",     "tenían",
        "tenías",      "ti",          "tiene",        "tienen",
        "tienes",      "todo",        "todos",        "tu",
        "tus",         "tuve",        "tuviera",      "tuvierais",
        "tuvieran",    "tuvieras",    "tuvieron",     "tuviese",
        "tuvieseis",   "tuviesen",    "tuvieses",     "tuvimos",
        "tuviste",     "tuvisteis",   "tuviéramos",   "tuviésemos",
        "tuvo",        "tuya",        "tuyas",        "tuyo",
        "tuyos",       "tú",          "un",           "una",
        "uno",         "unos",        "vosostras",    "vosostros",
        "vuestra",     "vuestras",    "vuestro",      "vuestros",
        "y",           "ya",          "yo",           "él",
        "éramos",
};

static int cmp(const void *key, const void *elem) {
        return strcmp(key, *(const char *const *) elem);
}

int kb_pg_is_stop_word(const char *language, const char *word) {
        static const struct {
                const char *language;
                const char *const *words;
                size_t n;
        } lists[] = {
                {"english", stop_english, ELEMENTSOF(stop_english)},
                {"german", stop_german, ELEMENTSOF(stop_german)},
                {"french", stop_french, ELEMENTSOF(stop_french)},
                {"spanish", stop_spanish, ELEMENTSOF(stop_spanish)},
        };
        for (size_t i = 0; language && word && i < ELEMENTSOF(lists); i++)
                if (streq(language, lists[i].language))
                        return bsearch(word, lists[i].words, lists[i].n, sizeof(char *), cmp) != NULL;
        return 0;
}
