#!/usr/bin/env python3
"""Writes translations/<lang>/LC_MESSAGES/lnvend.po from the table below, the one place the
customer screens' translations are edited. Every msgid is the English text of an @tr() in
ui/; src/ui/words.rs checks that each catalog has every customer message.
Run: python3 translations/make_po.py"""
import os

T = {}
# msgid: (fr, pt, es, de)
T["Preparing your invoice…"] = ("Préparation de votre facture…", "A preparar a fatura…", "Preparando su factura…", "Rechnung wird erstellt…")
T["Cancel"] = ("Annuler", "Cancelar", "Cancelar", "Abbrechen")
T["Cancel payment"] = ("Annuler le paiement", "Cancelar pagamento", "Cancelar el pago", "Zahlung abbrechen")
T["Sorry — your payment is recorded"] = ("Désolé — votre paiement est enregistré", "Desculpe — o seu pagamento está registado", "Lo sentimos — su pago está registrado", "Entschuldigung — Ihre Zahlung ist gespeichert")
T["Show this code to the operator to get your drink or your money back:"] = (
    "Montrez ce code à l’exploitant pour obtenir votre boisson ou être remboursé :",
    "Mostre este código ao operador para receber a bebida ou o dinheiro de volta:",
    "Muestre este código al operador para recibir su bebida o su dinero:",
    "Zeigen Sie diesen Code dem Betreiber, um Ihr Getränk oder Ihr Geld zu bekommen:")
T["Receipt code {}"] = ("Code du reçu {}", "Código do recibo {}", "Código de recibo {}", "Belegcode {}")
T["Refund to my wallet"] = ("Rembourser sur mon portefeuille", "Reembolsar na minha carteira", "Reembolsar a mi monedero", "Auf Wallet erstatten")
T["Done"] = ("Terminé", "Concluído", "Listo", "Fertig")
T["Close this message"] = ("Fermer ce message", "Fechar esta mensagem", "Cerrar este mensaje", "Meldung schließen")
T["Refund claim QR code"] = ("QR code du remboursement", "Código QR do reembolso", "Código QR del reembolso", "QR-Code der Erstattung")
T["Code {}"] = ("Code {}", "Código {}", "Código {}", "Code {}")
T["Close the refund"] = ("Fermer le remboursement", "Fechar o reembolso", "Cerrar el reembolso", "Erstattung schließen")
T["Pour your paid {}, receipt {}"] = ("Servir votre {} payé, reçu {}", "Servir o seu {} pago, recibo {}", "Servir su {} pagado, recibo {}", "Bezahltes {} zapfen, Beleg {}")
T["Receipt {}"] = ("Reçu {}", "Recibo {}", "Recibo {}", "Beleg {}")
T["Tap a drink — pay with Lightning ⚡"] = ("Touchez une boisson — payez en Lightning ⚡", "Toque numa bebida — pague com Lightning ⚡", "Toque una bebida — pague con Lightning ⚡", "Getränk antippen — mit Lightning zahlen ⚡")
T["Paid — tap to pour:"] = ("Payé — touchez pour servir :", "Pago — toque para servir:", "Pagado — toque para servir:", "Bezahlt — zum Zapfen antippen:")
T["{} paid — tap to pour:"] = ("{} payés — touchez pour servir :", "{} pagos — toque para servir:", "{} pagados — toque para servir:", "{} bezahlt — zum Zapfen antippen:")
T["Paid — kept for you:"] = ("Payé — gardé pour vous :", "Pago — guardado para si:", "Pagado — guardado para usted:", "Bezahlt — für Sie aufbewahrt:")
T["Kept for you. Please ask staff."] = ("Gardé pour vous. Demandez au personnel.", "Guardado para si. Pergunte ao pessoal.", "Guardado para usted. Pregunte al personal.", "Für Sie aufbewahrt. Bitte fragen Sie das Personal.")
T["The drinks are back in a moment."] = ("Les boissons reviennent dans un instant.", "As bebidas voltam já.", "Las bebidas vuelven en un momento.", "Die Getränke sind gleich wieder da.")
T["Out of service"] = ("Hors service", "Fora de serviço", "Fuera de servicio", "Außer Betrieb")
T["Reason: {}"] = ("Raison : {}", "Motivo: {}", "Motivo: {}", "Grund: {}")
T["Lightning invoice QR code"] = ("QR code de la facture Lightning", "Código QR da fatura Lightning", "Código QR de la factura Lightning", "QR-Code der Lightning-Rechnung")
T["Price {}"] = ("Prix {}", "Preço {}", "Precio {}", "Preis {}")
T["Amount {}"] = ("Montant {}", "Valor {}", "Importe {}", "Betrag {}")
T["Scan with a Lightning wallet"] = ("Scannez avec un portefeuille Lightning", "Leia com uma carteira Lightning", "Escanee con un monedero Lightning", "Mit einer Lightning-Wallet scannen")
T["Expires in {}:{}"] = ("Expire dans {}:{}", "Expira em {}:{}", "Caduca en {}:{}", "Läuft ab in {}:{}")
T["Payment received"] = ("Paiement reçu", "Pagamento recebido", "Pago recibido", "Zahlung erhalten")
T["Payment received {}"] = ("Paiement reçu {}", "Pagamento recebido {}", "Pago recibido {}", "Zahlung erhalten {}")
T["Pouring your {}…"] = ("Service de votre {}…", "A servir o seu {}…", "Sirviendo su {}…", "Ihr {} wird gezapft…")
T["Pouring progress"] = ("Progression du service", "Progresso", "Progreso", "Fortschritt")
T["Please keep your cup in place."] = ("Laissez votre gobelet en place.", "Mantenha o copo no lugar.", "Mantenga el vaso en su sitio.", "Bitte lassen Sie den Becher stehen.")
T["Dispensing your {}…"] = ("Distribution de votre {}…", "A dispensar o seu {}…", "Dispensando su {}…", "Ihr {} wird ausgegeben…")
T["Please wait for the machine."] = ("Veuillez patienter, la machine s’en occupe.", "Aguarde pela máquina, por favor.", "Espere a la máquina, por favor.", "Bitte warten Sie auf den Automaten.")
T["Thank you!"] = ("Merci !", "Obrigado!", "¡Gracias!", "Danke!")
T["Enjoy your {}."] = ("Savourez votre {}.", "Aproveite o seu {}.", "Disfrute su {}.", "Genießen Sie Ihr {}.")
T["Sold out"] = ("Épuisé", "Esgotado", "Agotado", "Ausverkauft")
T["{}, sold out"] = ("{}, épuisé", "{}, esgotado", "{}, agotado", "{}, ausverkauft")
T["This drink just ran out. Your payment is recorded as a credit."] = (
    "Cette boisson vient de s’épuiser. Votre paiement est enregistré comme un crédit.",
    "Esta bebida acabou de esgotar. O seu pagamento fica registado como crédito.",
    "Esta bebida se acaba de agotar. Su pago queda registrado como crédito.",
    "Dieses Getränk ist gerade ausgegangen. Ihre Zahlung ist als Guthaben gespeichert.")
T["Only part of your drink could be poured. The rest is recorded as a credit."] = (
    "Une partie seulement de votre boisson a pu être servie. Le reste est enregistré comme un crédit.",
    "Só parte da sua bebida pôde ser servida. O resto fica registado como crédito.",
    "Solo se pudo servir parte de su bebida. El resto queda registrado como crédito.",
    "Nur ein Teil Ihres Getränks konnte gezapft werden. Der Rest ist als Guthaben gespeichert.")
T["Scan the QR or tap your card"] = ("Scannez le QR ou posez votre carte", "Leia o QR ou encoste o seu cartão", "Escanee el QR o acerque su tarjeta", "QR scannen oder Karte auflegen")
T["Reading your card…"] = ("Lecture de votre carte…", "A ler o seu cartão…", "Leyendo su tarjeta…", "Karte wird gelesen…")
T["Paying with your card…"] = ("Paiement avec votre carte…", "A pagar com o seu cartão…", "Pagando con su tarjeta…", "Zahlung mit Ihrer Karte…")
T["Enter your card's PIN, or pay by QR"] = ("Saisissez le code de votre carte, ou payez par QR", "Introduza o PIN do seu cartão, ou pague por QR", "Introduzca el PIN de su tarjeta, o pague por QR", "Geben Sie die PIN Ihrer Karte ein oder zahlen Sie per QR")
T["Enter your card's PIN"] = ("Saisissez le code de votre carte", "Introduza o PIN do seu cartão", "Introduzca el PIN de su tarjeta", "Geben Sie die PIN Ihrer Karte ein")
T["PIN digits entered: {}"] = ("Chiffres du code saisis : {}", "Dígitos do PIN introduzidos: {}", "Dígitos del PIN introducidos: {}", "Eingegebene PIN-Ziffern: {}")
T["PIN digit {}"] = ("Chiffre {} du code", "Dígito {} do PIN", "Dígito {} del PIN", "PIN-Ziffer {}")
T["Clear PIN"] = ("Effacer le code", "Apagar o PIN", "Borrar el PIN", "PIN löschen")
T["Pay with this PIN"] = ("Payer avec ce code", "Pagar com este PIN", "Pagar con este PIN", "Mit dieser PIN zahlen")
T["Pay by QR"] = ("Payer par QR", "Pagar por QR", "Pagar por QR", "Per QR zahlen")
T["Cancel the PIN and pay by QR"] = ("Annuler le code et payer par QR", "Cancelar o PIN e pagar por QR", "Cancelar el PIN y pagar por QR", "PIN abbrechen und per QR zahlen")
T["This drink is over your card's limit. You can still pay by QR."] = (
    "Cette boisson dépasse la limite de votre carte. Vous pouvez toujours payer par QR.",
    "Esta bebida ultrapassa o limite do seu cartão. Pode pagar por QR.",
    "Esta bebida supera el límite de su tarjeta. Puede pagar por QR.",
    "Dieses Getränk übersteigt das Limit Ihrer Karte. Sie können per QR zahlen.")
T["Your card was declined: {}. You can still pay by QR."] = (
    "Votre carte a été refusée : {}. Vous pouvez toujours payer par QR.",
    "O seu cartão foi recusado: {}. Pode pagar por QR.",
    "Su tarjeta fue rechazada: {}. Puede pagar por QR.",
    "Ihre Karte wurde abgelehnt: {}. Sie können per QR zahlen.")
T["Your card's service cannot be reached. You can still pay by QR."] = (
    "Le service de votre carte est injoignable. Vous pouvez toujours payer par QR.",
    "O serviço do seu cartão não responde. Pode pagar por QR.",
    "El servicio de su tarjeta no responde. Puede pagar por QR.",
    "Der Dienst Ihrer Karte ist nicht erreichbar. Sie können per QR zahlen.")
T["This card's service is not allowed here. You can still pay by QR."] = (
    "Le service de cette carte n’est pas accepté ici. Vous pouvez toujours payer par QR.",
    "O serviço deste cartão não é aceite aqui. Pode pagar por QR.",
    "El servicio de esta tarjeta no se acepta aquí. Puede pagar por QR.",
    "Der Dienst dieser Karte ist hier nicht zugelassen. Sie können per QR zahlen.")
T["That card is not a Bolt Card."] = ("Cette carte n’est pas une Bolt Card.", "Este cartão não é um Bolt Card.", "Esa tarjeta no es una Bolt Card.", "Diese Karte ist keine Bolt Card.")
T["Could not read the card. Hold it still and try again."] = (
    "Lecture de la carte impossible. Tenez-la immobile et réessayez.",
    "Não foi possível ler o cartão. Segure-o parado e tente de novo.",
    "No se pudo leer la tarjeta. Manténgala quieta e inténtelo de nuevo.",
    "Karte nicht lesbar. Bitte ruhig halten und erneut versuchen.")
T["Buy {}, {}"] = ("Acheter {}, {}", "Comprar {}, {}", "Comprar {}, {}", "{} kaufen, {}")
T["Payments are unavailable right now. Please try again in a few minutes."] = (
    "Les paiements sont indisponibles pour le moment. Réessayez dans quelques minutes.",
    "Os pagamentos estão indisponíveis de momento. Tente novamente dentro de alguns minutos.",
    "Los pagos no están disponibles ahora. Vuelva a intentarlo en unos minutos.",
    "Zahlungen sind gerade nicht möglich. Bitte versuchen Sie es in ein paar Minuten erneut.")
T["The drink dispenser needs attention from the operator."] = (
    "Le distributeur doit être vérifié par l’exploitant.",
    "O dispensador precisa da atenção do operador.",
    "El dispensador necesita la atención del operador.",
    "Der Getränkespender muss vom Betreiber geprüft werden.")
T["Sales cannot be recorded right now."] = (
    "Les ventes ne peuvent pas être enregistrées pour le moment.",
    "Não é possível registar vendas neste momento.",
    "Ahora no se pueden registrar ventas.",
    "Verkäufe können gerade nicht gespeichert werden.")
T["Waiting for the correct time before taking payments. This takes a minute after power-up."] = (
    "En attente de l’heure exacte avant d’accepter les paiements. Cela prend une minute après la mise sous tension.",
    "À espera da hora certa antes de aceitar pagamentos. Demora um minuto depois de ligar.",
    "Esperando la hora correcta para aceptar pagos. Tarda un minuto tras el encendido.",
    "Warte auf die richtige Uhrzeit, bevor Zahlungen angenommen werden. Das dauert nach dem Einschalten etwa eine Minute.")
T["This payment was already used for a drink."] = (
    "Ce paiement a déjà servi pour une boisson.",
    "Este pagamento já foi usado para uma bebida.",
    "Este pago ya se usó para una bebida.",
    "Diese Zahlung wurde schon für ein Getränk verwendet.")
T["Nothing was charged — your payment is on its way back to your wallet."] = (
    "Rien n’a été débité — votre paiement revient vers votre portefeuille.",
    "Nada foi cobrado — o seu pagamento está a voltar para a sua carteira.",
    "No se ha cobrado nada — su pago está volviendo a su monedero.",
    "Nichts wurde abgebucht — Ihre Zahlung ist auf dem Weg zurück in Ihre Wallet.")
T["Your payment is recorded, but the drink could not be poured."] = (
    "Votre paiement est enregistré, mais la boisson n’a pas pu être servie.",
    "O seu pagamento está registado, mas não foi possível servir a bebida.",
    "Su pago está registrado, pero no se pudo servir la bebida.",
    "Ihre Zahlung ist gespeichert, aber das Getränk konnte nicht gezapft werden.")
T["Scan with your Lightning wallet to claim your refund"] = (
    "Scannez avec votre portefeuille Lightning pour récupérer votre remboursement",
    "Leia com a sua carteira Lightning para receber o reembolso",
    "Escanee con su monedero Lightning para cobrar su reembolso",
    "Scannen Sie mit Ihrer Lightning-Wallet, um Ihre Erstattung abzuholen")
T["This payment request expired\\n— nothing was charged"] = (
    "Cette demande de paiement a expiré\\n— rien n’a été débité",
    "Este pedido de pagamento expirou\\n— nada foi cobrado",
    "Esta solicitud de pago caducó\\n— no se cobró nada",
    "Diese Zahlungsanforderung ist abgelaufen\\n— nichts wurde berechnet")
T["Preparing your refund…"] = (
    "Préparation de votre remboursement…",
    "A preparar o seu reembolso…",
    "Preparando su reembolso…",
    "Ihre Erstattung wird vorbereitet…")
T["The refund failed. Show the code to the operator."] = (
    "Le remboursement a échoué. Montrez le code à l’exploitant.",
    "O reembolso falhou. Mostre o código ao operador.",
    "El reembolso falló. Muestre el código al operador.",
    "Die Erstattung ist fehlgeschlagen. Zeigen Sie den Code dem Betreiber.")

LANGS = ["fr", "pt", "es", "de"]
here = os.path.dirname(os.path.abspath(__file__))
for i, lang in enumerate(LANGS):
    d = os.path.join(here, lang, "LC_MESSAGES")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "lnvend.po"), "w", encoding="utf-8") as f:
        f.write('# The lnvend customer screens. Generated by translations/make_po.py; edit there.\n')
        f.write('msgid ""\nmsgstr ""\n"Language: %s\\n"\n"MIME-Version: 1.0\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n"Content-Transfer-Encoding: 8bit\\n"\n"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n' % lang)
        for k, v in T.items():
            f.write('msgid "%s"\nmsgstr "%s"\n\n' % (k, v[i]))
