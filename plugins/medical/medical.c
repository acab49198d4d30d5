/* SPDX-License-Identifier: MIT */
/* medical.c — the medical specialist: routes questions about symptoms,
 * diseases, medication, pregnancy, mental health (English, German, French,
 * Spanish); gives its passages as graded evidence with the source; reviews
 * answers by redacting personal identifiers (e-mail, phone, SSN), putting
 * an emergency notice first when the answer deals with red-flag symptoms,
 * and appending a see-a-clinician notice in the answer's language.
 *
 * Options: emergency_number (default "112 / 911"), disclaimer (yes/no),
 * plus the common max_passages, max_passage_chars, review. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin-util.h>

static const char default_prompt[] =
        "You are a cautious medical information assistant. Explain conditions, symptoms and "
        "treatments in plain language, separate what is well established from what is uncertain, "
        "mention red-flag symptoms that need urgent care, and cite the numbered evidence from the "
        "context as [n]. Never diagnose the user or prescribe doses for them; do not invent studies "
        "or figures. Encourage seeing a doctor or pharmacist when appropriate.";

static const MuLex lexicon[] = {
        /* care, clinicians */
        {"doctor|doctors|physician*|gp|pediatrician|paediatrician|nurse|nurses|pharmacist|dermatologist|"
         "cardiologist|dentist|gynecologist|psychiatrist",
         1.0, NULL, "clinician"},
        {"hospital|clinic|emergency room|er visit|urgent care|ambulance|icu|a and e", 0.9, NULL,
         "care setting"},
        {"medical|medicine|medicines|clinical|health|healthy|healthcare|wellbeing", 0.6, NULL, "health"},
        /* symptoms */
        {"symptom*|pain|painful|ache|aches|aching|headache*|migraine*|fever|cough*|sore throat|runny "
         "nose|nausea|nauseous|vomit*|diarrh*|constipat*|dizz*|fatigue|tired all the "
         "time|rash|itch*|swelling|swollen|bleeding|numbness|tingling|shortness of breath|chest "
         "pain|palpitation*|insomnia|cramps|sneez*|lump",
         1.2, NULL, "symptoms"},
        /* conditions */
        {"disease*|illness*|infection*|infected|virus|viral|bacteria*|bacterial|flu|influenza|covid*|"
         "coronavirus|a cold|common cold|have a cold|caught a "
         "cold|cancer|tumor|tumour|diabetes|diabetic|asthma|allerg*|eczema|psoriasis|acne|arthritis|"
         "hypertension|blood pressure|cholesterol|stroke|heart attack|heart "
         "disease|anemia|anaemia|thyroid|pneumonia|bronchitis|sinusitis|measles|chickenpox|shingles|stds|"
         "sti|stis|sexually "
         "transmitted|hiv|uti|concussion|fracture*|sprain*|dementia|alzheimer*|parkinson*|epilep*|seizure*|"
         "obesity|celiac|coeliac|gout|lupus|kidney stone*|appendicitis|tinnitus",
         1.2, NULL, "condition"},
        {"depression|anxiety|panic attack*|mental health|adhd|autism|bipolar|ptsd|ocd|burnout|suicid*|self "
         "harm|eating disorder|therapy|therapist|psychotherap*",
         1.1, NULL, "mental health"},
        /* treatment, drugs */
        {"medication*|medicament*|drug interaction*|side "
         "effect*|dose|dosage|overdose|prescription|prescribed|pill|pills|tablet|tablets|antibiotic*|"
         "antidepressant*|painkiller*|ibuprofen|paracetamol|acetaminophen|aspirin|amoxicillin|metformin|"
         "insulin|statin*|antihistamine*|steroid*|cortisone|vaccine*|vaccinat*|immunization|booster "
         "shot|flu shot|jab",
         1.2, NULL, "medication"},
        {"surgery|surgeon|operation "
         "on|anesthesia|anaesthesia|chemotherapy|radiotherapy|physiotherapy|physical "
         "therapy|treatment|treatments|cure|recovery|diagnos*|blood test|x ray|mri|ct "
         "scan|ultrasound|biopsy|screening",
         0.8, NULL, "treatment"},
        /* body, life stages */
        {"pregnan*|pregnancy|trimester|miscarriage|breastfeed*|contracepti*|period|menstrua*|menopause|"
         "fertility|ivf|newborn|toddler teething|teething",
         0.9, NULL, "pregnancy/life stage"},
        {"blood|heart rate|pulse|kidney*|liver|lung*|stomach|bowel|skin|bone|bones|joint "
         "pain|joints|muscle*|tendon|ligament|spine|back pain|knee|shoulder pain|eye infection|ear "
         "infection|tooth|teeth|gums",
         0.6, NULL, "body"},
        {"vitamin*|supplement*|deficien*|calorie*|diet|nutrition|protein intake|weight loss|lose "
         "weight|bmi|sleep|sleeping|hydration|dehydrat*",
         0.45, NULL, "nutrition/sleep"},
        {"bug bite|insect bite|tick bite|bee sting|spider bite|dog bite|sunburn|burned my|burnt my|cut my "
         "finger|wound",
         1.0, NULL, "injury"},
        {"is it safe to take|safe to take|safe during pregnancy|safe while pregnant|safe while "
         "breastfeeding",
         0.5, NULL, NULL},
        {"colonoscopy|endoscopy|mammogram|pap smear|vasectomy|c "
         "section|caesarean|cesarean|dialysis|transplant|pacemaker|ecg|ekg|blood transfusion",
         1.2, NULL, "procedure"},
        {"swallowed|choking|choked|poisoning|poisoned|ingested|fainted|fainting|passed out", 0.9, NULL,
         "acute"},
        {"hurt|hurts|hurting|sore|ringing|itching|burning|swollen|bleeds|aching", 0.9,
         "ear|ears|eye|eyes|knee|knees|back|stomach|belly|throat|chest|head|tooth|teeth|skin|foot|feet|leg|"
         "legs|arm|arms|hand|hands|neck|wrist|ankle|hip|hips|joint|joints",
         "body complaint"},
        {"pre existing condition*|preexisting condition*|medical condition*|chronic condition*|health "
         "condition*|heart condition|skin condition",
         1.0, NULL, "condition"},
        {"lump", -1.2, "lump sum", "lump sum"},

        /* German */
        {"arzt|arztin|arzte|hausarzt|krankenhaus|notaufnahme|apotheke|krank|krankheit*|schmerz*|kopfschmerz*"
         "|bauchschmerz*|ruckenschmerz*|fieber|husten|schnupfen|erkaltung|grippe|ubelkeit|durchfall|"
         "schwindel|ausschlag|symptom*|medikament*|tablette*|nebenwirkung*|impfung|geimpft|blutdruck|"
         "diabetes|allergie*|schwanger*|schwangerschaft|entzundung|therapie|diagnose|gesundheit*|verletz*|"
         "depression*|angststorung|schlafstorung*|schlaflos*",
         1.2, NULL, "Medizin (de)"},
        /* French */
        {"medecin*|docteur|hopital|urgences|pharmacie*|pharmacien|malade|maladie*|douleur*|mal de tete|mal "
         "au ventre|mal de "
         "dos|fievre|toux|rhume|grippe|nausee*|diarrhee|vertige*|eruption|symptome*|medicament*|comprime*|"
         "effets secondaires|effet secondaire|vaccin*|tension "
         "arterielle|diabete|allergie*|enceinte|grossesse|infection|inflammation|depression|angoisse|sante|"
         "blessure|ordonnance",
         1.2, NULL, "medecine (fr)"},
        /* Spanish */
        {"medico|medica|doctor|doctora|hospital|urgencias|farmacia|enfermo|enferma|enfermedad*|dolor|"
         "dolores|dolor de cabeza|fiebre|tengo tos|tos seca|la "
         "tos|resfriado|gripe|nauseas|diarrea|mareo*|sarpullido|sintoma*|medicamento*|pastilla*|efectos "
         "secundarios|vacuna*|presion "
         "arterial|diabetes|alergia*|embarazada|embarazo|infeccion|inflamacion|depresion|ansiedad|salud|"
         "herida|lesion|receta medica",
         1.2, NULL, "medicina (es)"},

        /* other senses */
        {"virus|viruses|infected|infection", -1.8,
         "computer|malware|antivirus|anti virus|laptop|pc|windows|email "
         "attachment|phishing|ransomware|trojan|worm|scan my|usb|hacked|server|website",
         "computer virus"},
        {"stroke|strokes", -1.5,
         "brush|paint|painting|swim*|swimming|backstroke|breaststroke|font|svg|css|canvas|golf|tennis|"
         "stroke width|stroke of luck|stroke of genius|keystroke*|pen|calligraphy|kanji|stroke order",
         "stroke (drawing/sport)"},
        {"cancer", -1.8, "zodiac|horoscope|tropic|astrology|star sign|sign cancer", "zodiac"},
        {"depression", -1.6,
         "great depression|economic depression|recession|1930s|tropical depression|depression era|new "
         "deal|wall street crash",
         "economic depression"},
        {"doctor who|doctor of philosophy|doctoral|doctorate|phd|dr strange|doctor strange", -1.2, NULL,
         "non-medical doctor"},
        {"health check*|healthcheck*|health endpoint|health probe|liveness|readiness|financial "
         "health|health of the economy|health bar|health points|cluster health|disk health|battery health",
         -1.3, NULL, "system health"},
        {"pain point|pain points|growing pains|pain in the neck", -1.0, NULL, "figurative pain"},
        {"treatment|treat|treated|treatments", -0.8,
         "tax|vat|accounting|water treatment|wastewater|wood|surface|data|unfair|fairly|equal",
         "non-medical treatment"},
        {"treat|treated", 0.3, NULL, NULL},
        {"tablet|tablets", -1.0,
         "ipad|android|screen|samsung|kindle|drawing tablet|wacom|tablet computer|laptop", "tablet device"},
        {"operation on|surgery", -0.8, "code|refactor|database|array|matrix|bitwise", NULL},
        {"receta", -1.5,
         "cocina|cocinar|pastel|torta|postre|pollo|paella|tortilla|comida|ingredientes|horno",
         "receta = recipe"},
        {"ordonnance", -0.8, "juge|tribunal|refere|juridique|gouvernement|loi", "ordonnance (law)"},
        {"blood", -0.8,
         "blood moon|bloodborne|blood orange|blood type game|true blood|first blood|bad blood|in cold blood",
         "figurative blood"},
        {"skin|skins", -1.0, "skin in the game|game skin|skins|ui skin|theme", "skin (other)"},
        {"period|periods", -0.9,
         "time period|grace period|notice period|trial period|period of|reporting period|tax "
         "period|periodic|historical period|billing period|probation period|lock in period|lock up "
         "period|retention period",
         "time period"},
        {"recovery", -0.8,
         "data recovery|disaster recovery|recovery mode|password recovery|economic recovery|account "
         "recovery|recovery key|market recovery",
         "recovery (other)"},
        {"diagnos*", -0.6, "car|engine|network|error|crash|bug|disk|system|server|kubernetes|pod",
         "technical diagnosis"},
        {"dose|dosage", -0.9, "dose of reality|dose of humour|dose of humor", NULL},
        {"sleep", -0.5,
         "sleep mode|sleep function|sleep 1|sleep command|time sleep|thread sleep|laptop|usleep|nanosleep",
         "sleep()"},
        {"heart", 0.3, NULL, NULL},
        {"patient|patients", 0.6, NULL, "patient"},
        {"be patient|patient with|patient enough", -0.6, NULL, NULL},
};

typedef struct MedicalState {
        MuState base;
        const char *emergency_number;
        int disclaimer;
} MedicalState;

static int32_t medical_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                            void **ret_state) {
        MedicalState *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        int r = mu_state_setup(&s->base, host, ctx, info, default_prompt);
        if (r < 0) {
                free(s);
                return r;
        }
        s->emergency_number = mu_option(host, ctx, "emergency_number");
        if (!s->emergency_number || !*s->emergency_number)
                s->emergency_number = "112 / 911";
        s->disclaimer = mu_option_bool(host, ctx, "disclaimer", 1);
        *ret_state = s;
        return 0;
}

static void medical_fini(void *state) {
        free(state);
}

static int32_t medical_score(void *state, const char *query, double *ret_score, char *reason,
                             uint32_t reason_size) {
        MuText t;
        if (mu_text_init(&t, query) < 0)
                return -ENOMEM;
        double ev = mu_lex_score(&t, lexicon, sizeof(lexicon) / sizeof(lexicon[0]), reason, reason_size);
        mu_text_done(&t);
        *ret_score = mu_squash_signed(ev, 1.0);
        return 0;
}

/* Red flags. Acute symptoms mean a possible emergency wherever they appear.
 * Emergency conditions (stroke, heart attack, sepsis) also mean one in a
 * question, but an answer merely naming them as a long-term risk ("raises
 * the risk of stroke") does not: there they count only next to warning-sign
 * or urgency words. */
static const char red_flag_symptoms[] =
        "chest pain|can t breathe|cannot breathe|difficulty breathing|shortness of breath|struggling to "
        "breathe|"
        "unconscious|unresponsive|seizure|seizures|overdose|suicid*|self harm|anaphyla*|severe bleeding|"
        "heavy bleeding|coughing blood|coughing up blood|vomiting blood|face drooping|slurred speech|"
        "brustschmerz*|atemnot|bewusstlos|douleur thoracique|dolor de pecho";
static const char red_flag_conditions[] =
        "heart attack|stroke|meningitis|sepsis|herzinfarkt|schlaganfall|crise cardiaque|avc|infarto|ictus";
static const char urgency_words[] = "warning sign*|signs of|symptoms of|call 911|call 112|call an "
                                    "ambulance|emergency|immediately|right away|"
                                    "sofort|notruf|urgence|urgencias";

static int red_flag(const char *text, int is_question) {
        MuText t;
        int r = 0;
        if (mu_text_init(&t, text) < 0)
                return 0;
        if (mu_match(&t, red_flag_symptoms))
                r = 1;
        else if (mu_match(&t, red_flag_conditions))
                r = is_question || mu_match(&t, urgency_words);
        mu_text_done(&t);
        return r;
}

static int32_t medical_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                    char **ret_system, char **ret_context) {
        MedicalState *s = state;
        MuBuf sys = {0}, ctx = {0};

        mu_buf_add(&sys, s->base.prompt);
        if (red_flag(query, 1))
                mu_buf_printf(&sys,
                              "\nThe question mentions a possible emergency: start by telling the user to "
                              "call emergency services (%s) if symptoms are severe or sudden.",
                              s->emergency_number);

        if (n_hits > 0) {
                mu_buf_add(&ctx, "Medical evidence, strongest match first (cite as [n]; do not extrapolate "
                                 "beyond it):\n");
                for (uint32_t i = 0; i < n_hits && i < s->base.max_passages; i++) {
                        const char *grade = i == 0                                 ? "best match"
                                            : hits[i].score >= hits[0].score * 0.5 ? "relevant"
                                                                                   : "weak match";
                        mu_buf_printf(&ctx, "\nEvidence [%u] — %s (%s)\n", i + 1, hits[i].title, grade);
                        mu_add_clipped(&ctx, hits[i].text, s->base.max_passage_chars);
                        if (*hits[i].source)
                                mu_buf_printf(&ctx, "\nSource: %s", hits[i].source);
                        mu_buf_add(&ctx, "\n");
                }
        }
        return mu_return_prompt(&s->base, &sys, &ctx, ret_system, ret_context);
}

/* A disclaimer already in the answer, in any language (MU_LANG_* order). */
static const char *const disclaimer_markers[] = {"not a diagnosis", "keine Diagnose", "pas un diagnostic",
                                                 "no un diagn"};

static const char *const disclaimers[] = {
        [MU_LANG_EN] =
                "This is general medical information, not a diagnosis or treatment plan. Please see a "
                "doctor or pharmacist about your own situation.",
        [MU_LANG_DE] = "Dies ist eine allgemeine medizinische Information, keine Diagnose. Bitte wenden Sie "
                       "sich für Ihre Situation an eine Ärztin, einen Arzt oder die Apotheke.",
        [MU_LANG_FR] = "Ceci est une information médicale générale, pas un diagnostic. Consultez un médecin "
                       "ou un pharmacien pour votre situation.",
        [MU_LANG_ES] = "Esta es información médica general, no un diagnóstico. Consulte a un médico o "
                       "farmacéutico sobre su caso.",
};

static int32_t medical_review(void *state, const char *answer, char **ret_answer) {
        MedicalState *s = state;
        MuBuf out = {0};
        int urgent = 0;

        if (!s->base.review) {
                *ret_answer = NULL;
                return 0;
        }
        urgent = red_flag(answer, 0);
        if (urgent && !mu_contains_ci(answer, s->emergency_number))
                mu_buf_printf(&out,
                              "If this is an emergency or symptoms are severe or sudden, call %s now.\n\n",
                              s->emergency_number);
        mu_redact(answer, MU_REDACT_EMAIL | MU_REDACT_PHONE | MU_REDACT_SSN, &out);
        if (s->disclaimer)
                mu_append_notice(&out, answer, disclaimer_markers, disclaimers);
        return mu_buf_finish(s->base.host, &out, ret_answer);
}

static const MoaPlugin descriptor = {
        MOA_PLUGIN_HEADER,
        .name = "medical",
        .version = "1.0.0",
        .description = "Medical information: symptoms, conditions, medication, mental health; emergency "
                       "notice on red flags, redacts identifiers, adds a see-a-clinician notice",
        .init = medical_init,
        .score = medical_score,
        .build_prompt = medical_build_prompt,
        .review = medical_review,
        .fini = medical_fini,
};

MOA_PLUGIN_DEFINE(descriptor)
